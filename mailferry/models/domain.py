from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONText, utcnow


class Domain(Base):
    """An account's claim to a domain name. Several accounts may claim one name while it is unverified; the
    first to pass the ownership check takes it, and only one row per name can be verified (a partial unique
    index, on both databases)."""

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("owner_id", "name"),
        Index("uq_domains_verified_name", "name", unique=True, postgresql_where=text("verified"),
              sqlite_where=text("verified")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), index=True)  # lower-case, IDNA
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    verify_token: Mapped[str] = mapped_column(String(64))
    # Mail is accepted only when `verified` (ownership + MX passed, or an admin forced it).
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    force_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_check_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # {"ownership": {"ok": bool, "found": ..., "expected": ..., "why": ...}, "mx": ..., "spf": ..., "dkim": ..., "dmarc": ...}
    check_results: Mapped[dict | None] = mapped_column(JSONText, nullable=True)
    # {"mx": "2026-11-23T...", ...}: when a record that used to pass started failing
    broken_since: Mapped[dict | None] = mapped_column(JSONText, nullable=True)
    # Inbound policy; None = the instance default from settings (DMARC_REJECT_POLICY, ...).
    dmarc_reject_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)  # reject|rewrite|quarantine
    dmarc_quarantine_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)  # quarantine|reject|forward
    spam_action: Mapped[str | None] = mapped_column(String(16), nullable=True)  # forward|quarantine|reject
    spam_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)  # a score over it counts as spam
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    owner = relationship("User")

    @property
    def rewrite_from_for_dmarc_reject(self) -> bool:
        """The option this policy grew from (kept for the API and CLI): DMARC failures of p=reject senders
        are forwarded with From rewritten."""
        return self.dmarc_reject_policy == "rewrite"

    @rewrite_from_for_dmarc_reject.setter
    def rewrite_from_for_dmarc_reject(self, enabled: bool) -> None:
        if enabled:
            self.dmarc_reject_policy = "rewrite"
        elif self.dmarc_reject_policy == "rewrite":
            self.dmarc_reject_policy = None
    aliases: Mapped[list["Alias"]] = relationship(back_populates="domain", cascade="all, delete-orphan")  # noqa: F821
    dkim_keys: Mapped[list["DkimKey"]] = relationship(back_populates="domain", cascade="all, delete-orphan")


class DkimKey(Base):
    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(16), default="rsa")  # rsa | ed25519
    private_key_enc: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet token of the PEM
    public_txt: Mapped[str] = mapped_column(Text)  # the p= value
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    domain: Mapped[Domain] = relationship(back_populates="dkim_keys")
