"""Retention: what Mailferry forgets, and when (the periodic worker job RETENTION_JOB).

- A message's content (`messages.raw`) is emptied RETENTION_DAYS after the message reached its final state
  (Message.state DONE: every copy delivered, bounced or given up; `completed_at` says when), and never before:
  queued (pending, deferred) and quarantined messages are never touched. Our DSNs and system messages are
  messages like any other and follow the same rule.
- Its metadata (envelope, deliveries, attempts) is deleted LOG_RETENTION_DAYS after the final state.
- Bounce events are kept two days (the suspension counts the last 24 hours). Notifications, the dedupe keys
  of notices, are kept LOG_RETENTION_DAYS and at least as long as a deferred message can wait for a delay
  warning; those of DNS breaks and DKIM keys are kept: their event (a break still open, a key still in use)
  can outlive any period, and forgetting the key would announce it again.

Each batch is its own short transaction: at most `batch` ids picked by an indexed query, then one UPDATE or
DELETE ... WHERE id IN (...) that checks the condition again (a message requeued meanwhile is skipped). On
PostgreSQL that takes row locks on the batch only; on SQLite the spool's commits wait for one batch at most.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, tuple_, update

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import BounceEvent, Message, Notification, utcnow
from mailferry.models.message import DONE
from mailferry.models.notification import DKIM_ROTATION, DNS_BROKEN
from mailferry.settings import Settings, load_settings

logger = logging.getLogger("mailferry.retention")
BATCH = 500
TIME_BUDGET = 300.0  # seconds per run; what is left waits for the next run (the job's timeout is 600)
PAUSE = 0.02  # seconds between batches: SQLite writers waiting on their busy timeout get the lock
BOUNCE_EVENTS_KEPT = timedelta(days=2)
KEPT_NOTICE_KINDS = (DNS_BROKEN, DKIM_ROTATION)
RETENTION_JOB = "mailferry.retention.retention_job"

_messages = Message.__table__


@dataclass(frozen=True)
class Cutoffs:
    """Messages final at or before `content` lose their content, at or before `metadata` their record; bounce
    events and notifications older than theirs go."""

    content: datetime
    metadata: datetime
    bounce_events: datetime
    notifications: datetime


def cutoffs(settings: Settings, now: datetime) -> Cutoffs:
    notices_kept = max(timedelta(days=settings.LOG_RETENTION_DAYS),
                       timedelta(seconds=settings.MAX_QUEUE_LIFETIME) + timedelta(days=1))
    return Cutoffs(content=now - timedelta(days=settings.RETENTION_DAYS),
                   metadata=now - timedelta(days=settings.LOG_RETENTION_DAYS),
                   bounce_events=now - BOUNCE_EVENTS_KEPT, notifications=now - notices_kept)


@dataclass
class Swept:
    """What one run removed; `finished` is False when the time budget ran out first."""

    contents: int = 0
    messages: int = 0
    bounce_events: int = 0
    notifications: int = 0
    batches: int = 0
    finished: bool = True


@dataclass
class Run:
    """One run's state, handed to each step."""

    now: datetime
    cut: Cutoffs
    limit: int
    swept: Swept
    after: tuple | None = None  # where emptying contents goes on from: (completed_at, id) of the last batch


def _final(cutoff: datetime):
    return (_messages.c.state == DONE) & (_messages.c.completed_at <= cutoff)


def delete_messages(conn: Connection, run: Run) -> bool:
    """Delete one batch of messages final since before the metadata cutoff; their deliveries and attempts go by
    ON DELETE CASCADE (SQLite: PRAGMA foreign_keys, set on every connection by mailferry.db). The DELETE checks
    the condition again, so a message requeued meanwhile stays, whole. True when there may be more."""
    ids = list(conn.scalars(select(_messages.c.id).where(_final(run.cut.metadata))
                            .order_by(_messages.c.completed_at).limit(run.limit)))
    if ids:
        run.swept.messages += conn.execute(
            delete(_messages).where(_messages.c.id.in_(ids), _final(run.cut.metadata))).rowcount
    return len(ids) == run.limit


def empty_contents(conn: Connection, run: Run) -> bool:
    """Empty the raw bytes of one batch of messages final since before the content cutoff, in (completed_at, id)
    order from where the last batch stopped (rows emptied before are not read again). True when there may be
    more."""
    completed_at, message_id = _messages.c.completed_at, _messages.c.id
    query = select(completed_at, message_id).where(_final(run.cut.content), _messages.c.content_deleted_at.is_(None))
    if run.after is not None:
        query = query.where(completed_at >= run.after[0], tuple_(completed_at, message_id) > tuple_(*run.after))
    rows = conn.execute(query.order_by(completed_at, message_id).limit(run.limit)).all()
    if rows:
        run.swept.contents += conn.execute(
            update(_messages).where(message_id.in_([r.id for r in rows]), _final(run.cut.content),
                                    _messages.c.content_deleted_at.is_(None))
            .values(raw=b"", content_deleted_at=run.now)).rowcount
        run.after = tuple(rows[-1])
    return len(rows) == run.limit


def delete_bounce_events(conn: Connection, run: Run) -> bool:
    ids = list(conn.scalars(select(BounceEvent.id).where(BounceEvent.at < run.cut.bounce_events)
                            .order_by(BounceEvent.id).limit(run.limit)))
    if ids:
        run.swept.bounce_events += conn.execute(delete(BounceEvent).where(BounceEvent.id.in_(ids))).rowcount
    return len(ids) == run.limit


def delete_notifications(conn: Connection, run: Run) -> bool:
    ids = list(conn.scalars(select(Notification.id).where(Notification.created_at < run.cut.notifications,
                                                          Notification.kind.not_in(KEPT_NOTICE_KINDS))
                            .order_by(Notification.created_at).limit(run.limit)))
    if ids:
        run.swept.notifications += conn.execute(delete(Notification).where(Notification.id.in_(ids))).rowcount
    return len(ids) == run.limit


# Metadata first: what goes entirely needs no emptying.
STEPS = (delete_messages, empty_contents, delete_bounce_events, delete_notifications)


def sweep(db: Database, settings: Settings, now: datetime | None = None, batch: int = BATCH,
          budget: float = TIME_BUDGET, pause: float = PAUSE) -> Swept:
    """One retention run: each step batch by batch, a transaction per batch, until nothing is left or `budget`
    seconds are spent (the rest waits for the next run); logs one summary line."""
    now = now or utcnow()
    run = Run(now, cutoffs(settings, now), batch, Swept())
    deadline = time.monotonic() + budget
    for step in STEPS:
        more = True
        while more and run.swept.finished:
            if time.monotonic() >= deadline:
                run.swept.finished = False
                break
            with db.engine.begin() as conn:
                more = step(conn, run)
            run.swept.batches += 1
            if more and pause:
                time.sleep(pause)
    return _summary(run.swept, run.cut)


def _summary(swept: Swept, cut: Cutoffs) -> Swept:
    log(logger, logging.INFO, "retention sweep", **asdict(swept), content_before=cut.content.isoformat(),
        metadata_before=cut.metadata.isoformat())
    return swept


def retention_job() -> dict:
    """RQ entry point of the hourly run (RETENTION_JOB); builds its own settings and database."""
    settings = load_settings()
    db = Database(settings.DATABASE_URL)
    try:
        return asdict(sweep(db, settings))
    finally:
        db.dispose()
