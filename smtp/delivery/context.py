"""Per-process delivery context, built on first use (never at import): settings, database, Redis, MX cache."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from redis import Redis
from rq import Queue

from mailferry.db import Database
from mailferry.queue import get_queue, make_redis
from mailferry.resolver import make_resolver
from mailferry.settings import Settings, settings_or_exit
from smtp.srs import Srs

from .keys import KeyCache
from .mx import MxResolver
from .transport import DirectTransport


@dataclass
class Context:
    settings: Settings
    db: Database
    redis: Redis
    queue: Queue
    mx: MxResolver
    transport: DirectTransport
    srs: Srs
    keys: KeyCache
    worker_id: str
    # message id -> when its next job should run; the worker schedules these once the job has finished
    followups: dict[str, datetime] = field(default_factory=dict)


_current: Context | None = None


def build(settings: Settings) -> Context:
    redis = make_redis(settings.REDIS_URL)
    db = Database(settings.DATABASE_URL)
    return Context(
        settings=settings,
        db=db,
        redis=redis,
        queue=get_queue(redis, settings.RQ_QUEUE),
        mx=MxResolver(make_resolver(settings), redis, settings.MX_CACHE_MIN_TTL, settings.MX_CACHE_MAX_TTL),
        transport=DirectTransport(hostname=settings.SMTP_HOSTNAME, port=settings.SMTP_DIRECT_PORT,
                                  timeout=settings.SMTP_CONNECT_TIMEOUT, require_tls=settings.SMTP_REQUIRE_TLS,
                                  data_timeout=min(600, settings.DELIVERY_LEASE // 2)),
        srs=Srs(settings.srs_secret, settings.SRS_MAX_AGE_DAYS),
        keys=KeyCache(db, settings.SECRET_KEY, settings.SMTP_ENABLE_DKIM),
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
        _current.db.dispose()
        _current.redis.close()
    _current = None
