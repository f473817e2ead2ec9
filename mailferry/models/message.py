from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONText, utcnow

# Message.state
QUEUED = "queued"          # spooled, waiting for (or in) delivery
DONE = "done"              # every delivery is final (delivered or bounced)
QUARANTINED = "quarantined"  # held for its owner (spam, DMARC): not delivered until released, never bounced
# Delivery.state
PENDING = "pending"
DEFERRED = "deferred"
DELIVERED = "delivered"
BOUNCED = "bounced"
FINAL_DELIVERY_STATES = (DELIVERED, BOUNCED)


class Message(Base):
    """One accepted message: the envelope and the raw bytes, the queue of record."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_state_next", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    peer: Mapped[str] = mapped_column(String(64), default="")
    helo: Mapped[str] = mapped_column(String(255), default="")
    mail_from: Mapped[str] = mapped_column(String(512), default="")  # "" for a null sender (bounce)
    rcpt_tos: Mapped[list] = mapped_column(JSONText)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    message_id_header: Mapped[str] = mapped_column(String(998), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    used_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    # What the inbound checks found (smtp/inbound): our Authentication-Results as JSON, whether From must be
    # rewritten on the way out, why no DSN may be sent ("" = one may), and the filter's score and reason.
    auth_results: Mapped[str | None] = mapped_column(Text, nullable=True)
    rewrite_from: Mapped[bool] = mapped_column(Boolean, default=False)
    dsn_block: Mapped[str] = mapped_column(String(64), default="")
    spam_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    filter_reason: Mapped[str] = mapped_column(Text, default="")
    # Retention: `raw` is emptied RETENTION_DAYS after the message reached a final state; this says when.
    content_deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    deliveries: Mapped[list["Delivery"]] = relationship(back_populates="message", cascade="all, delete-orphan", order_by="Delivery.id")


class Delivery(Base):
    """One destination address of one message, with its own state so a retry never re-sends it."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domains.id", ondelete="SET NULL"), nullable=True, index=True)
    alias_id: Mapped[int | None] = mapped_column(ForeignKey("aliases.id", ondelete="SET NULL"), nullable=True, index=True)
    recipient: Mapped[str] = mapped_column(String(512))  # the RCPT TO we accepted (alias address)
    destination: Mapped[str] = mapped_column(String(512))  # where it goes
    destination_domain: Mapped[str] = mapped_column(String(253), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="forward")  # forward | srs_return | dsn
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    route: Mapped[str] = mapped_column(String(255), default="")  # "mx:host" or "relay:name"
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    delay_warned_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # the owner was told it is late

    message: Mapped[Message] = relationship(back_populates="deliveries")


class DeliveryAttempt(Base):
    """Every try at one delivery: the log the dashboard shows."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    route: Mapped[str] = mapped_column(String(255), default="")
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply: Mapped[str] = mapped_column(Text, default="")
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | deferred | bounced
