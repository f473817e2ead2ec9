"""What /readyz reports: can this dashboard reach its database and Redis, and is a delivery worker alive?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailferry import heartbeats
from mailferry.db import Database


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"status": "ready" if self.ready else "not ready",
                "failed": [c.name for c in self.checks if not c.ok],
                "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.checks}}


def _first_line(exc: Exception) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def database_check(db: Database) -> Check:
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Check("database", False, _first_line(exc))
    return Check("database", True, "answers")


def redis_check(redis: Redis) -> Check:
    try:
        redis.ping()
    except RedisError as exc:
        return Check("redis", False, _first_line(exc))
    return Check("redis", True, "answers")


def workers_check(redis: Redis, max_age: int) -> Check:
    try:
        beats = heartbeats.fresh_beats(redis, max_age)
    except RedisError:
        return Check("workers", False, "unknown: Redis does not answer")
    if not beats:
        return Check("workers", False, f"no delivery worker sent a heartbeat in the last {max_age} s")
    return Check("workers", True, f"{len(beats)} alive, youngest heartbeat {beats[0].age:.0f} s ago")


def readiness(db: Database, redis: Redis, max_age: int) -> Readiness:
    return Readiness((database_check(db), redis_check(redis), workers_check(redis, max_age)))
