"""'Still trying' notices: an owner whose forwarded mail is still undelivered DELAY_WARNING_TIME after it was
received gets one message listing those deliveries (alias, destination, last reply, next attempt; never the
content), once per delivery (Delivery.delay_warned_at). The sender is never told: a forwarder that answers
senders about delays is a backscatter source, and the DSN at the end of the queue lifetime tells them.

A periodic worker job (DELAY_WARNING_JOB, enqueued by app/services/scheduling.py) works in batches of
BATCH deliveries, one transaction each: the open messages are found by ix_messages_state_next (state) and
their deliveries by ix_deliveries_message_id, so a run reads the queue, not the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import Delivery, Domain, Message, utcnow
from mailferry.models.message import DEFERRED, PENDING, QUEUED
from mailferry.models.notification import DELAY_WARNING
from mailferry.notifications import notify
from mailferry.settings import Settings, load_settings
from mailferry.system_mail import SystemMessage, dispatch
from mailferry.system_mail.templates import render
from mailferry.system_mail.wording import duration_words

logger = logging.getLogger("mailferry.delay_warnings")
BATCH = 500
FORWARD = "forward"  # Delivery.kind of forwarded mail (smtp.routes.FORWARD; app/ does not import smtp/)
LISTED = 50  # deliveries named in one notice; the rest are counted

_deliveries, _messages, _domains = Delivery.__table__, Message.__table__, Domain.__table__
_LATE = (
    select(_deliveries.c.id, _deliveries.c.message_id, _deliveries.c.domain_id, _deliveries.c.recipient,
           _deliveries.c.destination, _deliveries.c.last_code, _deliveries.c.last_reply, _deliveries.c.next_attempt_at,
           _messages.c.received_at, _domains.c.owner_id)
    .select_from(_messages.join(_deliveries, _deliveries.c.message_id == _messages.c.id)
                 .join(_domains, _domains.c.id == _deliveries.c.domain_id))
    .where(_messages.c.state == QUEUED, _deliveries.c.kind == FORWARD,
           _deliveries.c.state.in_((PENDING, DEFERRED)), _deliveries.c.delay_warned_at.is_(None))
    .order_by(_deliveries.c.id)
)


def late_query(cutoff: datetime, batch: int):
    """Up to `batch` open forwarded deliveries, not warned yet, of queued messages received by `cutoff`."""
    return _LATE.where(_messages.c.received_at <= cutoff).limit(batch)


@dataclass(frozen=True)
class Late:
    delivery_id: int
    message_id: str
    domain_id: int
    recipient: str
    destination: str
    last_code: int | None
    last_reply: str
    next_attempt_at: datetime | None
    received_at: datetime

    @property
    def last(self) -> str:
        """The last reply as the server gave it ("" before the first attempt)."""
        return f"{self.last_code} {self.last_reply}" if self.last_code is not None else self.last_reply


def warn_late(session: Session, settings: Settings, now: datetime | None = None, batch: int = BATCH) -> list[str]:
    """Warn every owner with deliveries late by DELAY_WARNING_TIME, one notice per owner per run; commits each
    `batch` of deliveries, dispatches its notices, and returns their message ids."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.DELAY_WARNING_TIME)
    told: set[int] = set()  # owners warned in this run: later batches mark their deliveries without a second notice
    sent: list[str] = []
    while True:
        conn = session.connection()
        rows = conn.execute(late_query(cutoff, batch)).all()
        if not rows:
            break
        taken, notices = warn_batch(conn, settings, rows, told, now)
        session.commit()
        dispatch(settings, notices)
        sent += notices
        if len(rows) < batch or not taken:  # none taken: another run has them, let it finish
            break
    return sent


def warn_batch(conn: Connection, settings: Settings, rows: list, told: set[int],
               now: datetime) -> tuple[set[int], list[str]]:
    """Mark the deliveries of `rows` (as late_query read them) warned, unless another run did meanwhile, and
    notify the owners of those taken that are not in `told` (then added to it). The ids taken, the notices."""
    taken = set(conn.execute(update(_deliveries)
                             .where(_deliveries.c.id.in_([r.id for r in rows]), _deliveries.c.delay_warned_at.is_(None))
                             .values(delay_warned_at=now).returning(_deliveries.c.id)).scalars())
    by_owner: dict[int, list[Late]] = {}
    for r in rows:
        if r.id in taken:
            by_owner.setdefault(r.owner_id, []).append(Late(r.id, r.message_id, r.domain_id, r.recipient,
                                                            r.destination, r.last_code, r.last_reply,
                                                            r.next_attempt_at, r.received_at))
    notices = []
    for owner_id, late in by_owner.items():
        if owner_id in told:
            continue
        told.add(owner_id)
        notice = notify(conn, settings, owner_id, DELAY_WARNING, f"deliveries:{late[0].delivery_id}",
                        _notice(settings, late), late[0].domain_id)
        log(logger, logging.INFO, "delay warning", message_id=late[0].message_id, owner_id=owner_id,
            deliveries=len(late), notice_id=notice)
        if notice is not None:
            notices.append(notice)
    return taken, notices


def _notice(settings: Settings, late: list[Late]) -> SystemMessage:
    text, html = render("delay_warning", late=late[:LISTED], more=max(0, len(late) - LISTED), count=len(late),
                        delay=duration_words(settings.DELAY_WARNING_TIME),
                        lifetime=duration_words(settings.MAX_QUEUE_LIFETIME),
                        base_url=settings.public_url)
    subject = (f"Still trying to deliver mail to {late[0].destination}" if len(late) == 1
               else f"Still trying to deliver {len(late)} messages")
    return SystemMessage(to="", subject=subject, text=text, html=html, kind=DELAY_WARNING)


def delay_warning_job() -> int:
    """RQ entry point (DELAY_WARNING_JOB); builds its own settings and database. How many notices it sent."""
    settings = load_settings()
    db = Database(settings.DATABASE_URL)
    try:
        with db.session() as session:
            return len(warn_late(session, settings))
    finally:
        db.dispose()


DELAY_WARNING_JOB = "app.services.delay_warnings.delay_warning_job"
