"""What deleting a domain or an alias takes with it, counted for the confirmation page before anything goes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailferry.models import Alias, Delivery, DkimKey, Domain, Message
from mailferry.models.message import DONE, QUARANTINED


@dataclass(frozen=True)
class DomainDeletion:
    name: str
    aliases: int
    dkim_keys: int
    logged: int  # messages in its log: kept until LOG_RETENTION_DAYS, but no longer shown under the domain
    queued: int  # still being delivered: they go on, their routes were fixed at receipt
    quarantined: int  # held: nobody can release them any more, the purge deletes them after QUARANTINE_DAYS


@dataclass(frozen=True)
class AliasDeletion:
    address: str
    destinations: tuple[str, ...]
    forwarded: int
    queued: int


def _messages_of(column, value) -> select:
    return select(Delivery.message_id).where(column == value).distinct().scalar_subquery()


def _count_messages(session: Session, column, value, *state_filter) -> int:
    query = select(func.count()).select_from(Message).where(Message.id.in_(_messages_of(column, value)), *state_filter)
    return session.scalar(query) or 0


def domain_deletion(session: Session, domain: Domain) -> DomainDeletion:
    """Counts for `domain` (already checked to be the actor's)."""
    count = _count_messages
    return DomainDeletion(
        name=domain.name,
        aliases=session.scalar(select(func.count()).where(Alias.domain_id == domain.id)) or 0,
        dkim_keys=session.scalar(select(func.count()).where(DkimKey.domain_id == domain.id)) or 0,
        logged=count(session, Delivery.domain_id, domain.id),
        queued=count(session, Delivery.domain_id, domain.id, Message.state.not_in((DONE, QUARANTINED))),
        quarantined=count(session, Delivery.domain_id, domain.id, Message.state == QUARANTINED),
    )


def alias_deletion(session: Session, alias: Alias) -> AliasDeletion:
    return AliasDeletion(
        address=alias.address, destinations=tuple(alias.destinations), forwarded=alias.forwarded_count or 0,
        queued=_count_messages(session, Delivery.alias_id, alias.id, Message.state.not_in((DONE, QUARANTINED))),
    )
