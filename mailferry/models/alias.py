from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONText, utcnow

CATCH_ALL = "*"


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("domain_id", "local_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    local_part: Mapped[str] = mapped_column(String(64))  # lower-case; "*" is the catch-all
    destinations: Mapped[list] = mapped_column(JSONText)  # ["them@gmail.com", ...]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    forwarded_count: Mapped[int] = mapped_column(Integer, default=0)
    bounced_count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    domain = relationship("Domain", back_populates="aliases")

    @property
    def is_catch_all(self) -> bool:
        return self.local_part == CATCH_ALL

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"
