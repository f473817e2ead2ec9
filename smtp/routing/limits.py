"""Per destination domain limits shared by all workers through Redis: concurrent connections and new
connections per minute. Over a limit the caller defers the delivery a little; it never fails it. Without
Redis the limits are not applied (as the inbound rate limits): a delivery under way must still reach its
commit, and a failed release once a destination has taken the message would have it sent again."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from mailferry.logs import get_logger, log

logger = get_logger("smtp.routing.limits")

# KEYS: concurrency zset, rate zset. ARGV: now, token, max_conn, per_minute, slot_ttl, new_connection (1|0).
# Returns {1, 0} when granted, {0, seconds_to_wait} when not. Reusing an open connection takes no rate token.
_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(math.min(5, math.max(1, tonumber(first[2]) - now)))}
end
local new_connection = ARGV[6] == '1'
if new_connection and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, tostring(math.max(1, tonumber(oldest[2]) + 60 - now))}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
if new_connection then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]) + 60)
redis.call('EXPIRE', KEYS[2], 120)
return {1, '0'}
"""


@dataclass(frozen=True)
class Grant:
    granted: bool
    token: str = ""
    retry_after: float = 0.0  # seconds to wait before asking again, when not granted


class DomainLimiter:
    """`acquire(domain)` before delivering to a destination domain, `release` after: a concurrency slot always,
    a token of the per-minute rate of new connections only when no open connection will be reused.

    A slot held by a worker that died expires after `slot_ttl` seconds, so a crash cannot leak capacity.
    """

    def __init__(self, redis: Redis, max_connections: int, per_minute: int, slot_ttl: int = 600,
                 prefix: str = "mf:limit:"):
        self.redis, self.max_connections, self.per_minute = redis, max_connections, per_minute
        self.slot_ttl, self.prefix = slot_ttl, prefix

    def acquire(self, domain: str, now: float | None = None, new_connection: bool = True) -> Grant:
        now = time.time() if now is None else now
        token = uuid.uuid4().hex
        try:
            granted, wait = self.redis.eval(
                _ACQUIRE, 2, f"{self.prefix}conn:{domain}", f"{self.prefix}rate:{domain}",
                repr(now), token, self.max_connections, self.per_minute, self.slot_ttl, int(new_connection),
            )
        except RedisError as exc:
            log(logger, logging.WARNING, "destination limits unavailable, not applied", domain=domain,
                error=type(exc).__name__)
            return Grant(True)  # no slot taken: nothing to release
        return Grant(True, token) if int(granted) else Grant(False, retry_after=float(wait))

    def release(self, domain: str, grant: Grant) -> None:
        """Give the slot back; never raises (a slot Redis could not take back expires after slot_ttl)."""
        if not (grant.granted and grant.token):
            return
        try:
            self.redis.zrem(f"{self.prefix}conn:{domain}", grant.token)
        except RedisError as exc:
            log(logger, logging.WARNING, "could not release a destination slot", domain=domain,
                error=type(exc).__name__)

    def in_use(self, domain: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(self.redis.zcount(f"{self.prefix}conn:{domain}", now, "+inf"))
