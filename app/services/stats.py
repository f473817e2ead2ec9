"""Figures for the stats pages and the API: daily counters for the last N days, queue depth, route split,
MX cache hit rate. Owners get the sum over their own domains; admins the all-domains row (domain_id 0).

`received` is counted from the messages table (accepted messages per day with a delivery the actor may see):
the spool is the record of what was accepted, so no separate counter can drift from it. The other series come
from the DailyStat counters the delivery worker bumps."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from mailferry.logs import log
from mailferry.models import DailyStat, Delivery, Domain, Message, utcnow
from mailferry.models.message import DEFERRED, PENDING

from .access import SYSTEM, Actor, sees_everything

logger = logging.getLogger("mailferry.stats")
ALL_DOMAINS = 0  # the DailyStat row the delivery side bumps alongside each domain's row
SERIES = ("received", "forwarded", "deferred", "bounced")
ROUTES = ("direct", "relay")
# Kept by the delivery side's MX cache (smtp/delivery/mx.py): counters shared by all workers.
MX_LOOKUPS_KEY = "mailferry:mx:dns_lookups"
MX_HITS_KEY = "mailferry:mx:cache_hits"


def _days(days: int, today: date | None = None) -> list[date]:
    today = today or utcnow().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _domain_filter(actor: Actor, domain_id: int | None):
    if domain_id is not None:
        return DailyStat.domain_id == domain_id
    if sees_everything(actor):
        return DailyStat.domain_id == ALL_DOMAINS
    return DailyStat.domain_id.in_(select(Domain.id).where(Domain.owner_id == actor.id))


def daily_series(session: Session, actor: Actor = SYSTEM, domain_id: int | None = None, days: int = 30,
                 today: date | None = None) -> list[dict]:
    """One dict per day, oldest first, zeros for days without traffic. The caller checks the actor may see
    `domain_id` (domains.get_domain); without it the actor's overall figures are returned."""
    span = _days(days, today)
    counted = tuple(c for c in SERIES + ROUTES if c != "received")
    columns = [func.coalesce(func.sum(getattr(DailyStat, c)), 0) for c in counted]
    rows = session.execute(select(DailyStat.day, *columns).where(
        _domain_filter(actor, domain_id), DailyStat.day >= span[0], DailyStat.day <= span[-1]).group_by(DailyStat.day))
    found = {row[0].isoformat(): dict(zip(counted, (int(v) for v in row[1:]), strict=True)) for row in rows}
    received = _received_per_day(session, actor, domain_id, span[0], span[-1] + timedelta(days=1))
    empty = dict.fromkeys(counted, 0)
    return [{"day": day.isoformat(), "received": received.get(day.isoformat(), 0), **found.get(day.isoformat(), empty)}
            for day in span]


def _received_per_day(session: Session, actor: Actor, domain_id: int | None, start: date, end: date) -> dict[str, int]:
    day = func.date(Message.received_at)
    query = select(day, func.count(distinct(Message.id))).where(Message.received_at >= start, Message.received_at < end)
    if domain_id is not None or not sees_everything(actor):
        query = query.join(Delivery, Delivery.message_id == Message.id)
        if domain_id is not None:
            query = query.where(Delivery.domain_id == domain_id)
        if not sees_everything(actor):
            query = query.where(Delivery.domain_id.in_(select(Domain.id).where(Domain.owner_id == actor.id)))
    return {str(d)[:10]: int(n) for d, n in session.execute(query.group_by(day))}


def totals(series: list[dict]) -> dict:
    keys = SERIES + ROUTES
    summed = {k: sum(day[k] for day in series) for k in keys}
    routed = summed["direct"] + summed["relay"]
    summed["direct_share"] = round(summed["direct"] / routed, 3) if routed else None
    return summed


def queue_depth(session: Session, actor: Actor = SYSTEM, domain_id: int | None = None) -> dict:
    """Deliveries still to do (pending and deferred) the actor may see."""
    query = select(Delivery.state, func.count()).where(Delivery.state.in_((PENDING, DEFERRED)))
    if not sees_everything(actor):
        query = query.where(Delivery.domain_id.in_(select(Domain.id).where(Domain.owner_id == actor.id)))
    if domain_id is not None:
        query = query.where(Delivery.domain_id == domain_id)
    counts = dict(session.execute(query.group_by(Delivery.state)).all())
    return {PENDING: counts.get(PENDING, 0), DEFERRED: counts.get(DEFERRED, 0),
            "total": counts.get(PENDING, 0) + counts.get(DEFERRED, 0)}


def mx_cache(redis: Redis) -> dict | None:
    """Hit rate of the workers' MX cache, or None when Redis is unreachable."""
    try:
        lookups, hits = redis.mget(MX_LOOKUPS_KEY, MX_HITS_KEY)
    except RedisError as exc:
        log(logger, logging.WARNING, "MX cache figures unavailable", error=str(exc))
        return None
    lookups, hits = int(lookups or 0), int(hits or 0)
    total = lookups + hits
    return {"dns_lookups": lookups, "cache_hits": hits, "hit_rate": round(hits / total, 3) if total else None}
