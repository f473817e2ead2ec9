from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONText, utcnow


class AuditEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE): who did what to which object, when, from where.
    No foreign keys, so the trail outlives what it describes."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # None: the CLI or a job
    actor: Mapped[str] = mapped_column(String(320), default="")  # the actor's email, "cli" or "system"
    owner_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # whose object it is
    action: Mapped[str] = mapped_column(String(64))  # e.g. login, login_failed, token_created, alias_changed
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict | None] = mapped_column(JSONText, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
