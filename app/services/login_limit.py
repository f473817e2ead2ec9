"""Failed-login rate limit kept in Redis: a fixed window per client address and per account.

Redis being down must not lock everyone out of the dashboard, so every check fails open with a log line.
"""

from __future__ import annotations

import hashlib
import logging

from redis import Redis
from redis.exceptions import RedisError

from mailferry.logs import log

logger = logging.getLogger("mailferry.login_limit")
KEY = "mailferry:login-failures:{kind}:{value}"


def _keys(client: str, email: str) -> list[str]:
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]  # no addresses in Redis keys
    return [KEY.format(kind="ip", value=client), KEY.format(kind="account", value=account)]


class LoginLimiter:
    def __init__(self, redis: Redis, limit: int, window: int):
        self.redis = redis
        self.limit = limit
        self.window = window

    def blocked(self, client: str, email: str) -> bool:
        """True when the address or the account used up its failed attempts in the current window."""
        try:
            counts = self.redis.mget(_keys(client, email))
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; allowing the attempt", error=str(exc))
            return False
        return any(int(c or 0) >= self.limit for c in counts)

    def record_failure(self, client: str, email: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in _keys(client, email):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)  # the window starts at the first failure
            pipe.execute()
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; failure not counted", error=str(exc))

    def reset_account(self, email: str) -> None:
        try:
            self.redis.delete(_keys("", email)[1])
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; account counter not reset", error=str(exc))
