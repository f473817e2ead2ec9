"""How mail has been leaving, in one place (the dashboard, the API and `flask --app wsgi stats --json`).

Everything is read from what every worker writes, never from one process's memory:
- direct and per-relay outcomes and per destination domain success rates: DeliveryAttempt rows (their route
  is "mx:<host>", "relay:<name>", or "" when nothing was contacted: MX lookup failed, our own limit, no relay
  available);
- DKIM signed/unsigned: the DailyStat counters (all-domains row) the worker bumps per delivered forward;
- MX lookups, cache hits and cache size: the Redis keys of smtp/delivery/mx.py;
- each relay's circuit: the Redis breaker of smtp/routing/breaker.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailferry.db import Database
from mailferry.models import DailyStat, Delivery, DeliveryAttempt, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED
from mailferry.settings import Settings
from smtp.delivery.mx import CACHE_KEY, HITS_KEY, LOOKUPS_KEY
from smtp.routing.breaker import CircuitBreaker

ALL_DOMAINS = 0
TOP_DOMAINS = 50
OUTCOMES = (DELIVERED, DEFERRED, BOUNCED)


def _outcomes() -> dict[str, int]:
    return dict.fromkeys(OUTCOMES, 0)


def _rate(counts: dict[str, int]) -> float | None:
    total = sum(counts[o] for o in OUTCOMES)
    return round(counts[DELIVERED] / total, 3) if total else None


def delivery_stats(db: Database, redis: Redis, settings: Settings, days: int = 7) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    with db.session() as s:
        by_route = _by_route(s, since)
        domains = _domains(s, since)
        dkim = _dkim(s, since)
    direct, unrouted, relayed = _outcomes(), _outcomes(), {}
    for (route, outcome), n in by_route.items():
        if route.startswith("mx:"):
            direct[outcome] += n
        elif route.startswith("relay:"):
            relayed.setdefault(route[len("relay:"):], _outcomes())[outcome] += n
        else:
            unrouted[outcome] += n
    return {
        "mode": settings.SMTP_DELIVERY_MODE,
        "days": days,
        "since": since.isoformat(timespec="seconds") + "Z",
        "direct": {"sent": direct[DELIVERED], "failed": direct[DEFERRED] + direct[BOUNCED],
                   "deferred": direct[DEFERRED], "bounced": direct[BOUNCED]},
        "relays": _relays(redis, settings, relayed),
        "not_sent": {"deferred": unrouted[DEFERRED], "bounced": unrouted[BOUNCED]},
        "dkim": dkim,
        "mx": _mx(redis),
        "domains": domains,
    }


def _by_route(s: Session, since) -> dict[tuple[str, str], int]:
    rows = s.execute(select(DeliveryAttempt.route, DeliveryAttempt.outcome, func.count())
                     .where(DeliveryAttempt.at >= since).group_by(DeliveryAttempt.route, DeliveryAttempt.outcome))
    return {(route or "", outcome): int(n) for route, outcome, n in rows if outcome in OUTCOMES}


def _domains(s: Session, since) -> list[dict[str, Any]]:
    kind = func.substr(DeliveryAttempt.route, 1, 3)  # "mx:" | "rel" | ""
    rows = s.execute(
        select(Delivery.destination_domain, kind, DeliveryAttempt.outcome, func.count())
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id).where(DeliveryAttempt.at >= since)
        .group_by(Delivery.destination_domain, kind, DeliveryAttempt.outcome))
    found: dict[str, dict[str, dict[str, int]]] = {}
    for domain, prefix, outcome, n in rows:
        if outcome not in OUTCOMES:
            continue
        route = {"mx:": "direct", "rel": "relay"}.get(prefix or "", "not_sent")
        per = found.setdefault(domain, {"all": _outcomes(), "direct": _outcomes(), "relay": _outcomes()})
        per["all"][outcome] += int(n)
        if route in per:
            per[route][outcome] += int(n)
    out = [{"domain": domain, "attempts": sum(per["all"].values()), **{o: per["all"][o] for o in OUTCOMES},
            "success_rate": _rate(per["all"]), "direct_success_rate": _rate(per["direct"]),
            "relay_success_rate": _rate(per["relay"])} for domain, per in found.items()]
    out.sort(key=lambda d: (-d["attempts"], d["domain"]))
    return out[:TOP_DOMAINS]


def _dkim(s: Session, since) -> dict[str, int]:
    signed, unsigned = s.execute(
        select(func.coalesce(func.sum(DailyStat.dkim_signed), 0), func.coalesce(func.sum(DailyStat.dkim_unsigned), 0))
        .where(DailyStat.domain_id == ALL_DOMAINS, DailyStat.day >= since.date())).one()
    return {"signed": int(signed), "unsigned": int(unsigned)}


def _relays(redis: Redis, settings: Settings, relayed: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    breaker = CircuitBreaker(redis, settings.RELAY_FAILURE_THRESHOLD, settings.RELAY_COOLDOWN)
    configured = {r["name"]: r["host"] for r in settings.relays}
    out = []
    for name in [*configured, *sorted(set(relayed) - set(configured))]:
        counts = relayed.get(name, _outcomes())
        out.append({"name": name, "host": configured.get(name), "configured": name in configured,
                    "sent": counts[DELIVERED], "failed": counts[DEFERRED] + counts[BOUNCED],
                    "circuit": _circuit(breaker, name)})
    return out


def _circuit(breaker: CircuitBreaker, name: str) -> dict[str, Any]:
    try:
        state = breaker.state(name)
    except RedisError as exc:
        return {"state": "unknown", "error": str(exc)}
    until = None
    if state.open_until:  # also shown once half-open: when the last cool-down ended
        until = datetime.fromtimestamp(state.open_until, tz=timezone.utc).isoformat(timespec="seconds")
    return {"state": state.state, "failures": state.failures, "open_until": until}


def _mx(redis: Redis) -> dict[str, Any]:
    counters = {LOOKUPS_KEY, HITS_KEY}
    try:
        lookups, hits = redis.mget(LOOKUPS_KEY, HITS_KEY)
        size = sum(1 for key in redis.scan_iter(match=CACHE_KEY.format(domain="*"), count=500)
                   if key.decode() not in counters)
    except RedisError as exc:
        return {"lookups": None, "cache_hits": None, "cache_size": None, "error": str(exc)}
    lookups, hits = int(lookups or 0), int(hits or 0)
    total = lookups + hits
    return {"lookups": lookups, "cache_hits": hits, "cache_size": size,
            "hit_rate": round(hits / total, 3) if total else None}
