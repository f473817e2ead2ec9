"""flask aliases add|list|remove"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import get_db, get_settings
from app.services.aliases import add_alias, alias_dict, delete_alias, find_alias, list_aliases
from app.services.domains import get_domain

from .output import cli_command, emit, invocation

aliases = AppGroup("aliases", help="Forwarding addresses: name@domain or *@domain (catch-all).")


@aliases.command("add")
@click.argument("address")
@click.argument("destinations")
@click.option("--note", default="", help="A note shown in the dashboard.")
@click.option("--disabled", is_flag=True, help="Create it disabled (mail to it is refused).")
@cli_command
def add(address: str, destinations: str, note: str, disabled: bool, as_json: bool) -> None:
    """Forward ADDRESS (name@domain, or *@domain for the catch-all) to DESTINATIONS (comma-separated)."""
    with get_db().session() as session:
        alias = add_alias(session, address, destinations, note=note, enabled=not disabled, settings=get_settings())
        data, verified = alias_dict(alias), alias.domain.verified
    lines = [f"{data['address']} -> {', '.join(data['destinations'])}{'' if data['enabled'] else ' (disabled)'}"]
    if not verified:
        lines.append(f"Note: {data['domain']} is not verified yet, so its mail is refused until "
                     f"`{invocation()} domains verify {data['domain']}` passes.")
    emit(as_json, data, lines)


@aliases.command("list")
@click.option("--domain", "domain_name", default=None, help="Only this domain's aliases.")
@cli_command
def list_(domain_name: str | None, as_json: bool) -> None:
    """Every alias with its destinations."""
    with get_db().session() as session:
        domain = get_domain(session, domain_name) if domain_name else None
        data = [alias_dict(a) for a in list_aliases(session, domain=domain)]
    lines = [f"{a['address']:<40} -> {', '.join(a['destinations'])}{'' if a['enabled'] else '  (disabled)'}"
             for a in data]
    emit(as_json, data, lines or "No aliases.")


@aliases.command("remove")
@click.argument("address")
@cli_command
def remove(address: str, as_json: bool) -> None:
    """Delete the alias ADDRESS."""
    with get_db().session() as session:
        alias = find_alias(session, address)
        data = alias_dict(alias)
        delete_alias(session, alias)
    emit(as_json, {"deleted": data}, f"Deleted {data['address']}.")
