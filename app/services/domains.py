"""Domains: add, look up and list, scoped to the acting owner (admins and SYSTEM see all)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from mailferry.models import Domain, User

from . import audit
from .access import SYSTEM, Actor, sees_everything
from .addresses import normalise_domain
from .errors import EXISTS, FORBIDDEN, NOT_FOUND, ServiceError


def new_verify_token() -> str:
    return secrets.token_hex(16)


def scoped(query: Select, actor: Actor) -> Select:
    """Limit a query over Domain (or joined to it) to what the actor may see."""
    return query if sees_everything(actor) else query.where(Domain.owner_id == actor.id)


def add_domain(session: Session, name: str, owner: User, actor: Actor = SYSTEM) -> Domain:
    """A new, unverified domain owned by `owner`. Owners may only add domains for themselves."""
    if not sees_everything(actor) and actor.id != owner.id:
        raise ServiceError(FORBIDDEN, "you can only add domains to your own account", "owner")
    normalised = normalise_domain(name, "name")
    if session.scalar(select(Domain.id).where(Domain.name == normalised)) is not None:
        raise ServiceError(EXISTS, f"{normalised} is already registered", "name")
    domain = Domain(name=normalised, owner_id=owner.id, verify_token=new_verify_token(), verified=False,
                    force_verified=False)
    session.add(domain)
    try:
        session.flush()
    except IntegrityError:  # added concurrently between the check and the insert
        raise ServiceError(EXISTS, f"{normalised} is already registered", "name") from None
    audit.record(session, audit.DOMAIN_ADDED, actor=actor, owner_id=owner.id, object_type="domain",
                 object_id=domain.id, summary=f"domain {domain.name} added", details={"owner": owner.email})
    return domain


def get_domain(session: Session, name_or_id: str | int, actor: Actor = SYSTEM) -> Domain:
    """The domain by id or name if the actor may see it; another owner's domain is reported as not found."""
    query = select(Domain)
    if isinstance(name_or_id, int):
        query = query.where(Domain.id == name_or_id)
        label = f"#{name_or_id}"
    else:
        try:
            normalised = normalise_domain(name_or_id, "name")
        except ServiceError:
            raise ServiceError(NOT_FOUND, f"no domain {name_or_id!r}", "name") from None
        query = query.where(Domain.name == normalised)
        label = normalised
    domain = session.scalar(scoped(query, actor))
    if domain is None:
        raise ServiceError(NOT_FOUND, f"no domain {label}", "name")
    return domain


def list_domains(session: Session, actor: Actor = SYSTEM) -> list[Domain]:
    return list(session.scalars(scoped(select(Domain), actor).order_by(Domain.name)))


def delete_domain(session: Session, domain: Domain, actor: Actor = SYSTEM) -> None:
    get_domain(session, domain.id, actor)  # scoping check
    audit.record(session, audit.DOMAIN_DELETED, actor=actor, owner_id=domain.owner_id, object_type="domain",
                 object_id=domain.id, summary=f"domain {domain.name} deleted",
                 details={"aliases": len(domain.aliases)})
    session.delete(domain)
    session.flush()


def set_rewrite_for_dmarc_reject(session: Session, domain: Domain, enabled: bool, actor: Actor = SYSTEM) -> Domain:
    """Whether mail from senders publishing DMARC p=reject is forwarded with From rewritten to the alias
    (Reply-To keeps the sender): their DMARC would fail on a forward otherwise, since SPF no longer aligns."""
    get_domain(session, domain.id, actor)  # scoping check
    domain.rewrite_from_for_dmarc_reject = bool(enabled)
    session.flush()
    return domain


def domain_dict(domain: Domain) -> dict:
    """The domain as JSON; the policy fields as stored (None = the instance default; see domain_policy)."""
    return {
        "id": domain.id,
        "name": domain.name,
        "unicode_name": unicode_name(domain.name),
        "owner": domain.owner.email if domain.owner is not None else None,
        "verified": domain.verified,
        "force_verified": domain.force_verified,
        "verified_at": _iso(domain.verified_at),
        "last_check_at": _iso(domain.last_check_at),
        "broken_since": domain.broken_since or {},
        "rewrite_from_for_dmarc_reject": bool(domain.rewrite_from_for_dmarc_reject),
        "dmarc_reject_policy": domain.dmarc_reject_policy,
        "dmarc_quarantine_policy": domain.dmarc_quarantine_policy,
        "spam_action": domain.spam_action,
        "spam_threshold": domain.spam_threshold,
    }


def unicode_name(ascii_name: str) -> str:
    try:
        return ascii_name.encode("ascii").decode("idna")
    except UnicodeError:
        return ascii_name


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None
