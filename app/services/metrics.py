"""The dashboard's /metrics: gauges read from the database and Redis at scrape time, and who may read them.

The counters of the SMTP server and the workers are on their own metrics ports (mailferry/metrics.py); these
gauges are the same whichever dashboard process answers, so every gunicorn worker serves them alike, from a
registry of its own per scrape (nothing kept between scrapes). Each query is cheap: messages by state and the
oldest queued one use the (state, next_attempt_at) index, the heartbeats one sorted set, the circuits one hash
per relay.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from mailferry import heartbeats
from mailferry.db import Database
from mailferry.models import Message, utcnow
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.settings import Settings
from smtp.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker

from .tokens import TokenRefused, authenticate_token

QUEUE_STATES = (QUEUED, QUARANTINED)  # `done` is every message ever kept: not a queue, and not cheap to count
CIRCUIT_STATES = (CLOSED, OPEN, HALF_OPEN)


def address_allowed(address: str, networks: tuple[str, ...]) -> bool:
    """Is the client `address` inside one of METRICS_ALLOWED_IPS?"""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n) for n in networks)


def admin_token(db: Database, secret: str) -> bool:
    """Is `secret` a valid API token of an admin?"""
    try:
        with db.session() as s:
            return authenticate_token(s, secret).user.is_admin
    except TokenRefused:
        return False


def exposition(db: Database, redis: Redis, settings: Settings) -> bytes:
    registry = CollectorRegistry()
    registry.register(DashboardCollector(db, redis, settings))
    return generate_latest(registry)


class DashboardCollector(Collector):
    def __init__(self, db: Database, redis: Redis, settings: Settings):
        self.db, self.redis, self.settings = db, redis, settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("mailferry_metrics_source_up", "Whether this scrape could read the source",
                               labels=["source"])
        for source, read in (("database", self._queue), ("redis", self._redis)):
            try:
                yield from read()
            except (SQLAlchemyError, RedisError):
                up.add_metric([source], 0)
            else:
                up.add_metric([source], 1)
        yield up

    def _queue(self) -> Iterator[GaugeMetricFamily]:
        messages = Message.__table__
        with self.db.session() as s:
            counts = dict(s.execute(select(messages.c.state, func.count()).where(messages.c.state.in_(QUEUE_STATES))
                                    .group_by(messages.c.state)).all())
            oldest: datetime | None = s.scalar(select(func.min(messages.c.received_at))
                                               .where(messages.c.state == QUEUED))
        depth = GaugeMetricFamily("mailferry_queue_messages", "Messages kept, by state (queued: not every "
                                  "delivery final yet; quarantined: held for the owner)", labels=["state"])
        for state in QUEUE_STATES:
            depth.add_metric([state], counts.get(state, 0))
        yield depth
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("mailferry_queue_oldest_age_seconds", "Age of the oldest queued message (0: none)",
                                value=max(0.0, age))

    def _redis(self) -> Iterator[GaugeMetricFamily]:
        beats = heartbeats.fresh_beats(self.redis, heartbeats.FORGET_AFTER)
        ages = GaugeMetricFamily("mailferry_worker_heartbeat_age_seconds", "Seconds since each delivery worker's "
                                 "last heartbeat", labels=["worker"])
        for beat in beats:
            ages.add_metric([beat.worker_id], beat.age)
        yield ages
        alive = sum(1 for b in beats if b.age <= self.settings.WORKER_HEARTBEAT_MAX_AGE)
        yield GaugeMetricFamily("mailferry_workers_alive", "Delivery workers whose heartbeat is younger than "
                                "WORKER_HEARTBEAT_MAX_AGE", value=alive)
        yield self._circuits()

    def _circuits(self) -> GaugeMetricFamily:
        breaker = CircuitBreaker(self.redis, self.settings.RELAY_FAILURE_THRESHOLD, self.settings.RELAY_COOLDOWN)
        family = GaugeMetricFamily("mailferry_relay_circuit_state", "1 for each relay's current circuit state "
                                   "(closed, open, half-open), else 0", labels=["relay", "state"])
        for relay in self.settings.relays:
            current = breaker.state(relay["name"]).state
            for state in CIRCUIT_STATES:
                family.add_metric([relay["name"], state], int(state == current))
        return family
