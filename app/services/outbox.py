"""System mail queued inside a service's ORM session and dispatched once that session commits.

The rows go into the session's transaction (so a rolled-back request sends nothing); the RQ jobs are enqueued
by an after_commit hook, so callers (views, API, CLI) need not remember to dispatch. Redis being down is fine:
the reconciler enqueues every due message.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage, dispatch, queue_system_message

_PENDING = "mailferry.outbox"


def queue_after_commit(session: Session, settings: Settings, message: SystemMessage,
                       domain_id: int | None = None) -> str:
    """Insert `message` in the session's transaction; its id. The delivery job is enqueued after the commit."""
    message_id = queue_system_message(session.connection(), settings, message, domain_id)
    dispatch_after_commit(session, settings, [message_id])
    return message_id


def dispatch_after_commit(session: Session, settings: Settings, message_ids: list[str]) -> None:
    """Enqueue the delivery jobs of these messages once the session commits (nothing if it rolls back)."""
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", lambda s: _dispatch(s, settings))
        event.listen(session, "after_rollback", lambda s: s.info.get(_PENDING, []).clear())
    pending.extend(message_ids)


def _dispatch(session: Session, settings: Settings) -> None:
    ids = list(session.info.get(_PENDING, []))
    session.info.get(_PENDING, []).clear()
    dispatch(settings, ids)
