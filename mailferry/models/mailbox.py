from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow

# Mailbox.verified_by
BY_LINK = "link"            # the owner of the address clicked the confirmation link
BY_ADMIN = "admin"          # an admin marked it verified
BY_MIGRATION = "migration"  # it was a destination before verification existed (migration 0004)


class Mailbox(Base):
    """A destination address as one owner uses it: confirmed once (then every alias of the owner may name it),
    suspended when it bounces too much. Aliases name destinations by address; this row says whether mail may
    go there."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("owner_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)  # normalised: local part and domain lower-case
    verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    verified_by: Mapped[str] = mapped_column(String(16), default="")
    # One-use links: a confirmation link carries the nonce; confirming (or sending a new link) replaces it.
    confirm_nonce: Mapped[str] = mapped_column(String(64), default="")
    confirm_sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Suspended destinations receive nothing until the owner re-enables them.
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    suspended_reason: Mapped[str] = mapped_column(String(255), default="")
    # Consecutive "user unknown" (5.1.1) bounces; any delivery that succeeds resets it.
    unknown_user_streak: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    owner = relationship("User")

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def usable(self) -> bool:
        return self.verified and not self.suspended


class BounceEvent(Base):
    """One permanent failure of a delivery to a mailbox: counted over the last 24 hours to suspend it."""

    __tablename__ = "bounce_events"
    __table_args__ = (Index("ix_bounce_events_mailbox_at", "mailbox_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="")  # enhanced status code, e.g. 5.1.1
    reply: Mapped[str] = mapped_column(String(512), default="")
