"""flask dkim generate|list|activate"""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import get_db, get_settings
from app.services.dkim_keys import ALGORITHMS, activate_key, generate_key, txt_record
from app.services.domains import get_domain
from app.services.errors import NOT_FOUND, ServiceError
from mailferry.models import DkimKey, Domain

from .output import cli_command, emit, invocation

dkim = AppGroup("dkim", help="DKIM signing keys of a domain.")


def key_dict(key: DkimKey, domain: Domain) -> dict:
    name, value = txt_record(key, domain.name)
    return {"domain": domain.name, "selector": key.selector, "algorithm": key.algorithm, "active": key.active,
            "record": {"type": "TXT", "name": name, "value": value}}


@dkim.command("generate")
@click.argument("name")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="rsa", show_default=True,
              help="rsa (2048 bits) or ed25519.")
@click.option("--activate", is_flag=True, help="Sign with the new key at once (default: only if none is active).")
@cli_command
def generate(name: str, algorithm: str, activate: bool, as_json: bool) -> None:
    """Generate a key for NAME under a fresh selector and print the TXT record to publish."""
    with get_db().session() as session:
        domain = get_domain(session, name)
        key = generate_key(session, domain, get_settings().SECRET_KEY, algorithm, activate=True if activate else None)
        data = key_dict(key, domain)
    record = data["record"]
    lines = [f"Publish this TXT record ({data['algorithm']}, selector {data['selector']}):",
             f"Name:  {record['name']}", "Type:  TXT", f"Value: {record['value']}"]
    if not data["active"]:
        lines.append(f"Not signing yet: once published, run: {invocation()} dkim activate {data['domain']} "
                     f"{data['selector']}")
    emit(as_json, data, lines)


@dkim.command("list")
@click.argument("name")
@cli_command
def list_(name: str, as_json: bool) -> None:
    """NAME's keys and their TXT records (private keys are never shown)."""
    with get_db().session() as session:
        domain = get_domain(session, name)
        keys = session.scalars(select(DkimKey).where(DkimKey.domain_id == domain.id).order_by(DkimKey.id))
        data = [key_dict(k, domain) for k in keys]
    lines = [f"{k['selector']:<14} {k['algorithm']:<8} {'active' if k['active'] else 'inactive':<8} "
             f"{k['record']['name']}" for k in data]
    emit(as_json, data, lines or f"{name}: no DKIM keys; run dkim generate {name}")


@dkim.command("activate")
@click.argument("name")
@click.argument("selector")
@cli_command
def activate(name: str, selector: str, as_json: bool) -> None:
    """Sign NAME's mail with the key SELECTOR from now on (the old key stays until deleted)."""
    with get_db().session() as session:
        domain = get_domain(session, name)
        key = session.scalar(select(DkimKey).where(DkimKey.domain_id == domain.id, DkimKey.selector == selector))
        if key is None:
            raise ServiceError(NOT_FOUND, f"{domain.name} has no DKIM key with selector {selector!r}", "selector")
        activate_key(session, key)
        data = key_dict(key, domain)
    emit(as_json, data, f"{data['domain']} now signs with selector {data['selector']}.")
