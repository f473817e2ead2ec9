from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

COUNTERS = ("received", "forwarded", "deferred", "bounced", "direct", "relay", "dkim_signed", "dkim_unsigned")


class DailyStat(Base):
    """Counters per domain per day (domain_id 0 = all domains)."""

    __tablename__ = "daily_stats"
    __table_args__ = (UniqueConstraint("domain_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(Integer, default=0, index=True)
    day: Mapped[date] = mapped_column(Date)
    received: Mapped[int] = mapped_column(Integer, default=0)
    forwarded: Mapped[int] = mapped_column(Integer, default=0)
    deferred: Mapped[int] = mapped_column(Integer, default=0)
    bounced: Mapped[int] = mapped_column(Integer, default=0)
    direct: Mapped[int] = mapped_column(Integer, default=0)
    relay: Mapped[int] = mapped_column(Integer, default=0)
    dkim_signed: Mapped[int] = mapped_column(Integer, default=0)
    dkim_unsigned: Mapped[int] = mapped_column(Integer, default=0)


class RouteStat(Base):
    """Recent outcomes per destination domain and route (direct or relay:<name>), for smart routing."""

    __tablename__ = "route_stats"
    __table_args__ = (UniqueConstraint("destination_domain", "route"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    destination_domain: Mapped[str] = mapped_column(String(253))
    route: Mapped[str] = mapped_column(String(64))
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # exponentially weighted success rate in [0, 1]
    score_milli: Mapped[int] = mapped_column(Integer, default=1000)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


