from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

# Notification.kind, and the keys of User.notification_prefs (each on unless set to false)
DNS_BROKEN = "dns_broken"
DESTINATION_SUSPENDED = "destination_suspended"
QUARANTINE_DIGEST = "quarantine_digest"
DKIM_ROTATION = "dkim_rotation"
DELAY_WARNING = "delay_warning"
NOTIFICATION_KINDS = (DNS_BROKEN, DESTINATION_SUSPENDED, QUARANTINE_DIGEST, DKIM_ROTATION, DELAY_WARNING)


class Notification(Base):
    """A notice sent to an owner. (user, kind, key) is unique: the same event is never announced twice, even
    when two workers notice it at once (the second insert fails and sends nothing)."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("user_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))  # what was announced, e.g. "domain:3:mx:2026-12-01T04:00:00"
    message_id: Mapped[str] = mapped_column(String(32), default="")  # the system message that carried it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
