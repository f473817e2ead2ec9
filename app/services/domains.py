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
    """A new, unverified claim of `name` by `owner`. Other accounts may claim the same name meanwhile: the first
    to pass the ownership check takes it. Owners may only add domains for themselves."""
    if not sees_everything(actor) and actor.id != owner.id:
        raise ServiceError(FORBIDDEN, "you can only add domains to your own account", "owner")
    normalised = normalise_domain(name, "name")
    if session.scalar(select(Domain.id).where(Domain.name == normalised, Domain.owner_id == owner.id)) is not None:
        raise ServiceError(EXISTS, f"{normalised} is already in your domains", "name")
    if verified_claim(session, normalised) is not None:
        raise ServiceError(EXISTS, f"{normalised} is already in use on this server", "name")
    domain = Domain(name=normalised, owner_id=owner.id, verify_token=new_verify_token(), verified=False,
                    force_verified=False)
    session.add(domain)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the same owner added it concurrently between the check and the insert
        raise ServiceError(EXISTS, f"{normalised} is already in your domains", "name") from None
    audit.record(session, audit.DOMAIN_ADDED, actor=actor, owner_id=owner.id, object_type="domain",
                 object_id=domain.id, summary=f"domain {domain.name} added", details={"owner": owner.email})
    return domain


def verified_claim(session: Session, name: str) -> Domain | None:
    """The verified row of this name, whoever owns it (there is at most one)."""
    return session.scalar(select(Domain).where(Domain.name == name, Domain.verified))


def taken_ids(session: Session, claims: list[Domain]) -> set[int]:
    """Which of these unverified claims name a domain another account has verified (one query)."""
    pending = {d.name: d.id for d in claims if not d.verified}
    if not pending:
        return set()
    verified = session.scalars(select(Domain.name).where(Domain.name.in_(pending), Domain.verified))
    return {pending[name] for name in verified}


def taken_elsewhere(session: Session, domain: Domain) -> bool:
    """True for an unverified claim whose name another account has since verified."""
    if domain.verified:
        return False
    other = verified_claim(session, domain.name)
    return other is not None and other.id != domain.id


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
        # several claims of a name: the verified one, else the oldest (admins and the CLI see every claim)
        query = query.where(Domain.name == normalised).order_by(Domain.verified.desc(), Domain.id).limit(1)
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
