"""The lease on a Message: one worker owns it at a time; a crashed worker's lease expires and it is retried."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from mailferry.db import Database
from mailferry.models import Message, utcnow
from mailferry.models.message import QUEUED


def claim(db: Database, message_id: str, owner: str, seconds: int) -> bool:
    """Take the lease when the message is queued, due, and nobody holds a live lease on it."""
    now = utcnow()
    with db.session() as s:
        result = s.execute(
            update(Message)
            .where(Message.id == message_id, Message.state == QUEUED)
            .where(or_(Message.lease_until.is_(None), Message.lease_until < now))
            .where(or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
            .values(lease_until=now + timedelta(seconds=seconds), lease_owner=owner)
        )
        return result.rowcount == 1


def renew(db: Database, message_id: str, owner: str, seconds: int) -> bool:
    """Extend our lease; False when it was lost (it expired and another worker took the message)."""
    with db.session() as s:
        result = s.execute(
            update(Message).where(Message.id == message_id, Message.lease_owner == owner)
            .values(lease_until=utcnow() + timedelta(seconds=seconds))
        )
        return result.rowcount == 1


def waiting_until(db: Database, message_id: str) -> datetime | None:
    """When a queued, unleased message that is not due yet becomes due (None otherwise)."""
    now = utcnow()
    with db.session() as s:
        row = s.execute(select(Message.state, Message.next_attempt_at, Message.lease_until)
                        .where(Message.id == message_id)).first()
    if row is None or row.state != QUEUED or (row.lease_until and row.lease_until >= now):
        return None
    return row.next_attempt_at if row.next_attempt_at and row.next_attempt_at > now else None
