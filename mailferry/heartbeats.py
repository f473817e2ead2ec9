"""Delivery workers' heartbeats in Redis: one sorted set, worker id -> time of its last beat.

RQ's own worker heartbeat is written only between jobs and every few minutes when idle, too rarely to say
within a minute that no worker is left; a thread of each worker beats every BEAT_EVERY seconds instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

KEY = "mailferry:heartbeats:workers"
BEAT_EVERY = 10.0  # seconds
FORGET_AFTER = 86400  # a beat this old is removed by the next beat of any worker


@dataclass(frozen=True)
class Beat:
    worker_id: str  # host:pid:random, as smtp.delivery.context makes it
    age: float  # seconds since the beat

    @property
    def host(self) -> str:
        return self.worker_id.rsplit(":", 2)[0]


def beat(redis: Redis, worker_id: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(KEY, {worker_id: now})
        pipe.zremrangebyscore(KEY, "-inf", now - FORGET_AFTER)
        pipe.execute()


def forget(redis: Redis, worker_id: str) -> None:
    """A worker that stops cleanly takes its beat with it."""
    redis.zrem(KEY, worker_id)


def fresh_beats(redis: Redis, max_age: float, now: float | None = None) -> list[Beat]:
    """The workers that beat within `max_age` seconds, youngest first."""
    now = time.time() if now is None else now
    found = redis.zrevrangebyscore(KEY, "+inf", now - max_age, withscores=True)
    return [Beat(member.decode() if isinstance(member, bytes) else member, max(0.0, now - score))
            for member, score in found]
