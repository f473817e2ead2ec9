"""Per-process delivery context, built on first use (never at import): settings, database, Redis, MX cache,
the direct and relay transports, the shared per-domain limits and the sender policies."""

from __future__ import annotations

import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from redis import Redis
from rq import Queue

from mailferry.db import Database
from mailferry.destinations import DestinationGuard
from mailferry.queue import get_queue, make_redis
from mailferry.resolver import make_resolver
from mailferry.settings import Settings, settings_or_exit
from smtp.routing.breaker import CircuitBreaker
from smtp.routing.limits import DomainLimiter
from smtp.srs import Srs

from .keys import KeyCache
from .mx import MxResolver
from .relay import Relay, RelayTransport
from .senders import Senders
from .transport import DirectTransport


@dataclass
class Context:
    settings: Settings
    db: Database
    redis: Redis
    queue: Queue
    mx: MxResolver
    guard: DestinationGuard  # which MX addresses direct delivery may connect to
    transport: DirectTransport
    relays: RelayTransport
    limiter: DomainLimiter
    senders: Senders
    srs: Srs
    keys: KeyCache
    worker_id: str
    rng: random.Random = field(default_factory=random.Random)  # smart routing's exploration
    # message id -> when its next job should run; the worker schedules these once the job has finished
    followups: dict[str, datetime] = field(default_factory=dict)


_current: Context | None = None


def build(settings: Settings) -> Context:
    redis = make_redis(settings.REDIS_URL)
    db = Database(settings.DATABASE_URL, durable_commits=not settings.DELIVERY_ASYNC_COMMIT)
    resolver = make_resolver(settings)
    srs = Srs(settings.srs_secret, settings.SRS_MAX_AGE_DAYS)
    keys = KeyCache(db, settings.SECRET_KEY, settings.SMTP_ENABLE_DKIM)
    data_timeout = min(600, settings.DELIVERY_LEASE // 2)
    guard = DestinationGuard(allow_private=settings.ALLOW_PRIVATE_DESTINATIONS)
    return Context(
        settings=settings,
        db=db,
        redis=redis,
        queue=get_queue(redis, settings.RQ_QUEUE),
        mx=MxResolver(resolver, redis, settings.MX_CACHE_MIN_TTL, settings.MX_CACHE_MAX_TTL),
        guard=guard,
        transport=DirectTransport(hostname=settings.SMTP_HOSTNAME, port=settings.SMTP_DIRECT_PORT,
                                  timeout=settings.SMTP_CONNECT_TIMEOUT, require_tls=settings.SMTP_REQUIRE_TLS,
                                  data_timeout=data_timeout, guard=guard),
        relays=RelayTransport([Relay.from_dict(r) for r in settings.relays],
                              CircuitBreaker(redis, settings.RELAY_FAILURE_THRESHOLD, settings.RELAY_COOLDOWN),
                              hostname=settings.SMTP_HOSTNAME, timeout=settings.SMTP_CONNECT_TIMEOUT,
                              ca_file=settings.SMTP_RELAY_CA_FILE, data_timeout=data_timeout),
        limiter=DomainLimiter(redis, settings.DIRECT_MAX_CONNECTIONS_PER_DOMAIN,
                              settings.DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE),
        senders=Senders(settings.SMTP_HOSTNAME, srs, keys, arc=settings.SMTP_ENABLE_ARC),
        srs=srs,
        keys=keys,
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
    )


def configure(settings: Settings) -> Context:
    """Install the context for this process (the worker entry point and tests call this)."""
    global _current
    reset()
    _current = build(settings)
    return _current


def current() -> Context:
    """The installed context, or one built from the environment on first use."""
    global _current
    if _current is None:
        _current = build(settings_or_exit())
    return _current


def reset() -> None:
    global _current
    if _current is not None:
        _current.relays.close()
        _current.transport.close()  # QUIT the parked direct connections
        _current.db.dispose()
        _current.redis.close()
    _current = None
