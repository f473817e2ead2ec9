"""Notices to an owner about their own objects (a DNS record broke, a destination was suspended, ...): sent at
most once per event, only when the owner has not turned that kind off (User.notification_prefs).

`notify` works in the caller's transaction: the Notification row (unique per user, kind and key) and the system
message commit together or not at all, and a second worker noticing the same event inserts nothing. Dispatch
the returned message id after the commit (mailferry.system_mail.dispatch; the reconciler does it otherwise).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailferry.models import Notification, User, utcnow
from mailferry.models.notification import NOTIFICATION_KINDS
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage, queue_system_message

_notifications = Notification.__table__


def wants(prefs: dict | None, kind: str) -> bool:
    """Whether an owner with these preferences gets notices of `kind` (every kind is on unless turned off)."""
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    return (prefs or {}).get(kind, True) is not False


def notify(conn: Connection, settings: Settings, user_id: int, kind: str, key: str,
           message: SystemMessage, domain_id: int | None = None) -> str | None:
    """Queue `message` to the owner's account address as the notice of event `key` of `kind`; its message id, or None when the
    owner turned the kind off, the account is inactive, or this event was announced already."""
    user = conn.execute(select(User.notification_prefs, User.active, User.email).where(User.id == user_id)).first()
    if user is None or not user.active or not wants(user.notification_prefs, kind):
        return None
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(dialect.insert(_notifications)
                            .values(user_id=user_id, kind=kind, key=key[:255], message_id="", created_at=utcnow())
                            .on_conflict_do_nothing(index_elements=["user_id", "kind", "key"])
                            .returning(_notifications.c.id)).first()
    if inserted is None:
        return None
    message_id = queue_system_message(conn, settings, replace(message, to=user.email), domain_id)
    conn.execute(update(_notifications).where(_notifications.c.id == inserted.id).values(message_id=message_id))
    return message_id

