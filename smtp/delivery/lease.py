"""The lease on a Message: one worker owns it at a time; a crashed worker's lease expires and it is retried."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, func, or_, select, update
from sqlalchemy.orm import Session

from mailferry.db import Database
from mailferry.models import Message, utcnow
from mailferry.models.message import QUEUED

_messages = Message.__table__
# What a delivery pass needs of a message (smtp.delivery.load): the claim returns it, no second read.
CLAIMED = (_messages.c.id, _messages.c.mail_from, _messages.c.raw, _messages.c.received_at, _messages.c.helo,
           _messages.c.peer, _messages.c.used_tls, _messages.c.auth_results, _messages.c.rewrite_from,
           _messages.c.dsn_block)


def claim(session: Session | Connection, message_id: str, owner: str, seconds: int) -> bool:
    """Take the lease when the message is queued, due, and nobody holds a live lease on it."""
    return len(claim_many(session, [message_id], owner, seconds)) == 1


def claim_many(session: Session | Connection, message_ids: list[str], owner: str, seconds: int) -> list[Row]:
    """`claim` for several messages in one statement; returns the CLAIMED columns of the messages claimed
    (RETURNING: SQLite >= 3.35, PostgreSQL)."""
    now = utcnow()
    return list(session.execute(
        update(_messages)
        .where(_messages.c.id.in_(message_ids), _messages.c.state == QUEUED)
        .where(or_(_messages.c.lease_until.is_(None), _messages.c.lease_until < now))
        .where(or_(_messages.c.next_attempt_at.is_(None), _messages.c.next_attempt_at <= now))
        # a message a worker took was enqueued, whether or not the spool's stamp got to it first
        .values(lease_until=now + timedelta(seconds=seconds), lease_owner=owner,
                enqueued_at=func.coalesce(_messages.c.enqueued_at, now))
        .returning(*CLAIMED)
    ))


def renew(session: Session | Connection, message_id: str, owner: str, seconds: int) -> bool:
    """Extend our lease; False when it was lost (it expired and another worker took the message)."""
    result = session.execute(
        update(_messages).where(_messages.c.id == message_id, _messages.c.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=seconds))
    )
    return result.rowcount == 1


def waiting_until(session: Session | Connection, message_id: str) -> datetime | None:
    """When a queued, unleased message that is not due yet becomes due (None otherwise)."""
    now = utcnow()
    row = session.execute(select(Message.state, Message.next_attempt_at, Message.lease_until)
                          .where(Message.id == message_id)).first()
    if row is None or row.state != QUEUED or (row.lease_until and row.lease_until >= now):
        return None
    return row.next_attempt_at if row.next_attempt_at and row.next_attempt_at > now else None


class Holder:
    """Our hold on one message's lease, renewed in the database only when a third of it has run out."""

    def __init__(self, db: Database, message_id: str, owner: str, seconds: int):
        self.db, self.message_id, self.owner, self.seconds = db, message_id, owner, seconds
        self._renewed = 0.0

    def claimed(self, at: float) -> "Holder":
        """A lease claimed at time.monotonic() `at`: until a third of it has run out from then, it is ours."""
        self._renewed = at
        return self

    def expires_in(self) -> float:
        """Seconds until the lease we last set runs out (another worker may take the message after that)."""
        return self._renewed + self.seconds - time.monotonic()

    def keep(self, session: Session | Connection | None = None) -> bool:
        """Still ours? Until a third of the lease has passed nobody else can have taken it."""
        if time.monotonic() - self._renewed < self.seconds / 3:
            return True
        at = time.monotonic()
        if session is not None:
            kept = renew(session, self.message_id, self.owner, self.seconds)
        else:
            with self.db.engine.begin() as conn:
                kept = renew(conn, self.message_id, self.owner, self.seconds)
        self._renewed = at  # not before: a renewal that failed (database away) extended nothing
        return kept
