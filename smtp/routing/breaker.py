"""A circuit breaker per relay, kept in Redis so every worker process skips a failing relay together."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class BreakerState:
    name: str
    state: str
    failures: int
    open_until: float  # epoch seconds; 0 when closed


class CircuitBreaker:
    """`threshold` consecutive failures open the circuit for `cooldown` seconds; after it one trial is let
    through (half-open): success closes it, failure opens it again for another cool-down."""

    def __init__(self, redis: Redis, threshold: int, cooldown: int, prefix: str = "mf:breaker:"):
        self.redis, self.threshold, self.cooldown, self.prefix = redis, threshold, cooldown, prefix

    def _key(self, name: str) -> str:
        return self.prefix + name

    def state(self, name: str, now: float | None = None) -> BreakerState:
        now = time.time() if now is None else now
        raw = self.redis.hgetall(self._key(name))
        failures = int(raw.get(b"failures", 0))
        open_until = float(raw.get(b"open_until", 0))
        if failures < self.threshold:
            return BreakerState(name, CLOSED, failures, 0.0)
        return BreakerState(name, OPEN if open_until > now else HALF_OPEN, failures, open_until)

    def allow(self, name: str, now: float | None = None) -> bool:
        """Closed: yes. Open: no. Half-open: yes for the first caller only, which claims the trial."""
        now = time.time() if now is None else now
        current = self.state(name, now)
        if current.state == CLOSED:
            return True
        if current.state == OPEN:
            return False
        # Claim the trial by pushing open_until forward; a concurrent caller sees OPEN and skips.
        claimed = self.redis.eval(_CLAIM_TRIAL, 1, self._key(name), str(now), str(now + self.cooldown))
        return bool(claimed)

    def record_success(self, name: str) -> None:
        self.redis.delete(self._key(name))

    def record_failure(self, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = self._key(name)
        pipe = self.redis.pipeline()
        pipe.hincrby(key, "failures", 1)
        pipe.expire(key, max(self.cooldown * 10, 3600))
        failures = pipe.execute()[0]
        if failures >= self.threshold:
            self.redis.hset(key, "open_until", now + self.cooldown)


_CLAIM_TRIAL = """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'open_until', ARGV[2])
return 1
"""
