"""Quarantine: messages the inbound checks held for their owner (mailferry.models.message.QUARANTINED).

Owners list a domain's held messages, release one (it is then forwarded as usual) or delete it; held
messages older than QUARANTINE_DAYS are purged. A message belongs to a domain through its deliveries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import Delivery, Domain, Message, utcnow
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.settings import Settings, load_settings

from . import audit
from .access import SYSTEM, Actor
from .domains import get_domain
from .errors import INVALID, NOT_FOUND, ServiceError
from .message_log import get_message

logger = logging.getLogger("mailferry.quarantine")
PURGE_BATCH = 500


@dataclass(frozen=True)
class HeldMessage:
    """One quarantined message as the owner sees it."""

    id: str
    received_at: datetime
    mail_from: str
    from_header: str
    subject: str
    spam_score: float | None
    filter_reason: str
    size: int

    def to_dict(self) -> dict:
        return {"id": self.id, "received_at": self.received_at.isoformat() + "Z", "mail_from": self.mail_from,
                "from": self.from_header, "subject": self.subject, "spam_score": self.spam_score,
                "filter_reason": self.filter_reason, "size": self.size}


def _of_domain(domain_id: int):
    return exists().where(Delivery.message_id == Message.id, Delivery.domain_id == domain_id)


def list_quarantine(session: Session, domain: Domain, actor: Actor = SYSTEM, limit: int = 500) -> list[HeldMessage]:
    """The domain's quarantined messages, newest first."""
    get_domain(session, domain.id, actor)  # scoping check
    rows = session.scalars(select(Message).where(Message.state == QUARANTINED, _of_domain(domain.id))
                           .order_by(Message.received_at.desc(), Message.id).limit(limit))
    return [held_message(m) for m in rows]


def count_quarantine(session: Session, domain: Domain) -> int:
    return session.scalar(select(func.count()).select_from(Message)
                          .where(Message.state == QUARANTINED, _of_domain(domain.id))) or 0


def held_message(message: Message) -> HeldMessage:
    return HeldMessage(message.id, message.received_at, message.mail_from, from_header(message.raw),
                       message.subject, message.spam_score, message.filter_reason, message.size)


def from_header(raw: bytes) -> str:
    """The decoded From header, or "" when there is none or it cannot be parsed."""
    try:
        value = BytesHeaderParser(policy=default_policy).parsebytes(raw[:65536]).get("From", "")
        return str(value or "").replace("\r", " ").replace("\n", " ").strip()[:998]
    except Exception:  # a malformed header is the sender's problem, not a reason to hide the message
        return ""


def get_held(session: Session, message_id: str, actor: Actor = SYSTEM, domain_id: int | None = None) -> Message:
    """A quarantined message the actor may see (another owner's is not found), of `domain_id` if given."""
    message = get_message(session, message_id, actor)
    if domain_id is not None and not session.scalar(select(_of_domain(domain_id)).where(Message.id == message_id)):
        raise ServiceError(NOT_FOUND, f"no message {message_id} in this domain", "message")
    if message.state != QUARANTINED:
        raise ServiceError(INVALID, f"message {message_id} is not in quarantine", "message")
    return message


def release(session: Session, message: Message, actor: Actor = SYSTEM) -> Message:
    """Queue the message for delivery as usual. Its dsn_block stays, so a later bounce still sends no DSN.
    The caller dispatches it after commit (message_log.dispatch_now; with Redis down the reconciler does)."""
    now = utcnow()
    message.state, message.next_attempt_at, message.lease_until, message.lease_owner = QUEUED, now, None, None
    for delivery in message.deliveries:
        delivery.next_attempt_at = now
    session.flush()
    audit.record_message_event(session, audit.QUARANTINE_RELEASED, actor=actor, message_id=message.id,
                               deliveries=list(message.deliveries), summary=f"released message {message.id} from quarantine")
    log(logger, logging.INFO, "released from quarantine", message_id=message.id)
    return message


def delete_held(session: Session, message: Message, actor: Actor = SYSTEM) -> None:
    """Delete the message and its deliveries."""
    message_id = message.id
    audit.record_message_event(session, audit.QUARANTINE_DELETED, actor=actor, message_id=message_id,
                               deliveries=list(message.deliveries), summary=f"deleted message {message_id} from quarantine")
    session.delete(message)
    session.flush()
    log(logger, logging.INFO, "deleted from quarantine", message_id=message_id)


def purge(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Delete quarantined messages received more than QUARANTINE_DAYS ago; returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=settings.QUARANTINE_DAYS)
    total = 0
    while True:
        ids = list(session.scalars(select(Message.id).where(Message.state == QUARANTINED,
                                                            Message.received_at < cutoff).limit(PURGE_BATCH)))
        if not ids:
            break
        session.execute(delete(Delivery).where(Delivery.message_id.in_(ids)))
        session.execute(delete(Message).where(Message.id.in_(ids)))
        session.flush()
        total += len(ids)
    if total:
        log(logger, logging.INFO, "quarantine purged", count=total, older_than=cutoff.isoformat())
    return total


def purge_job() -> int:
    """RQ entry point for the hourly purge (PURGE_JOB); builds its own settings and database."""
    settings = load_settings()
    db = Database(settings.DATABASE_URL)
    try:
        with db.session() as session:
            return purge(session, settings)
    finally:
        db.dispose()


PURGE_JOB = "app.services.quarantine.purge_job"
