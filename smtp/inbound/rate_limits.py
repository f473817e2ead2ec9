"""Rate limits shared by every SMTP process through Redis (fixed windows, one round trip per check):
messages per client address per minute, messages per alias and per domain per hour, and refused
recipients per client address per hour (directory harvesting spread over many connections).

Redis down means no limit, never refused mail: the outage is logged and the check passes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio

from mailferry.logs import get_logger, log
from mailferry.settings import Settings

from ..routes import Route

logger = get_logger("smtp.inbound.rate_limits")
PREFIX = "mailferry:rl"


@dataclass(frozen=True)
class Limits:
    ip_per_minute: int = 0
    alias_per_hour: int = 0
    domain_per_hour: int = 0
    refused_per_hour: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.RATE_LIMIT_IP_PER_MINUTE, settings.RATE_LIMIT_ALIAS_PER_HOUR,
                   settings.RATE_LIMIT_DOMAIN_PER_HOUR, settings.REFUSED_RCPT_LIMIT_PER_HOUR)

    @property
    def any(self) -> bool:
        return any((self.ip_per_minute, self.alias_per_hour, self.domain_per_hour, self.refused_per_hour))


@dataclass(frozen=True)
class LimitCheck:
    allowed: bool
    name: str = ""  # which limit was hit: ip | alias | domain | refused


ALLOWED = LimitCheck(True)


class RateLimiter:
    def __init__(self, redis_url: str, limits: Limits):
        self.limits = limits
        self.redis = redis.asyncio.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if limits.any else None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def message_from(self, ip: str) -> LimitCheck:
        """One more message (MAIL FROM) from `ip` this minute; also refused ("refused") while `ip` is over its
        refused-recipient limit. One round trip for both."""
        keys, caps = [], []
        if self.limits.refused_per_hour:
            keys.append((f"refused:{ip}", 3600, 0))
            caps.append(("refused", self.limits.refused_per_hour))
        if self.limits.ip_per_minute:
            keys.append((f"ip:{ip}", 60, 1))
            caps.append(("ip", self.limits.ip_per_minute))
        return await self._check(keys, caps)

    async def recipient(self, route: Route) -> LimitCheck:
        """One more message for the route's alias and domain this hour (a route without an alias, such as
        an SRS bounce, counts for its domain only)."""
        keys, caps = [], []
        if self.limits.alias_per_hour and route.alias_id is not None:
            keys.append((f"alias:{route.alias_id}", 3600, 1))
            caps.append(("alias", self.limits.alias_per_hour))
        if self.limits.domain_per_hour and route.domain_id is not None:
            keys.append((f"domain:{route.domain_id}", 3600, 1))
            caps.append(("domain", self.limits.domain_per_hour))
        return await self._check(keys, caps)

    async def refused(self, ip: str) -> LimitCheck:
        """Count a refused recipient for `ip`: over the hourly limit its sessions are closed."""
        if not self.limits.refused_per_hour:
            return ALLOWED
        return await self._check([(f"refused:{ip}", 3600, 1)], [("refused", self.limits.refused_per_hour)])

    async def _check(self, keys: list[tuple[str, int, int]], caps: list[tuple[str, int]]) -> LimitCheck:
        """keys: (counter, window in seconds, amount to add); the first counter over its cap names the limit."""
        if not keys:
            return ALLOWED
        counts = await self._count(keys)
        if counts is None:  # Redis is down: no limit
            return ALLOWED
        for count, (name, cap) in zip(counts, caps, strict=True):
            if count > cap:
                return LimitCheck(False, name)
        return ALLOWED

    async def _count(self, keys: list[tuple[str, int, int]]) -> list[int] | None:
        now = int(time.time())
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, window, add in keys:
                    name = f"{PREFIX}:{key}:{now // window}"
                    pipe.incrby(name, add)
                    pipe.expire(name, window * 2, nx=True)
                replies = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log(logger, logging.WARNING, "rate limits unavailable, not applied", error=type(exc).__name__)
            return None
        return [int(replies[i]) for i in range(0, len(replies), 2)]
