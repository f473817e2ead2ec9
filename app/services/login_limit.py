"""Failed-login throttling kept in Redis, so it holds across every web process.

- Per (account, client address) pair: LOGIN_RATE_LIMIT failures within LOGIN_RATE_WINDOW lock that pair until the
  window ends. Nobody can lock an account out by failing from their own address: the right password from an
  address that has not been failing is never refused.
- Per client address: past LOGIN_RATE_LIMIT failures within the window (whatever the accounts), each further
  failure makes the address wait before its next try, doubling from 1 second up to IP_MAX_DELAY. An address
  guessing across many accounts slows down; users behind a shared address (NAT) wait seconds, not minutes.
- Per account, second factor only: LOGIN_RATE_LIMIT wrong codes within the window lock the account's second
  step from every address. Only someone who has the password reaches it, so this cannot be used to lock out
  someone whose address is merely known; without it, the password plus many addresses would allow
  unlimited code guesses.

Redis being down must not lock everyone out of the dashboard, so every check fails open with a log line.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from mailferry.logs import log

logger = logging.getLogger("mailferry.login_limit")
KEY = "mailferry:login-failures:{kind}:{value}"
IP_MAX_DELAY = 300  # seconds


@dataclass(frozen=True)
class Wait:
    """A refused attempt: how long until the next one may be made, and why."""

    seconds: int
    reason: str  # "account" (this account from this address), "address" (this address) or "second factor"

    @property
    def message(self) -> str:
        who = {"account": "for this account from your address", "address": "from your address",
               "second factor": "with wrong codes for this account"}[self.reason]
        return f"Too many failed logins {who}. Try again in {self.human}."

    @property
    def human(self) -> str:
        return _human(self.seconds)


def _human(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


def _account(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]  # no addresses in Redis keys


def _pair(client: str, email: str) -> str:
    return KEY.format(kind="pair", value=f"{_account(email)}:{client}")


def _ip(client: str) -> str:
    return KEY.format(kind="ip", value=client)


def _ip_delay(client: str) -> str:
    return KEY.format(kind="ip-wait", value=client)


def _second_factor(email: str) -> str:
    return KEY.format(kind="2fa", value=_account(email))


class LoginLimiter:
    def __init__(self, redis: Redis, limit: int, window: int):
        self.redis = redis
        self.limit = limit
        self.window = window

    def wait(self, client: str, email: str) -> Wait | None:
        """Why (and how long) a password attempt for `email` from `client` must wait, or None."""
        return self._wait(client, email, second_factor=False)

    def second_factor_wait(self, client: str, email: str) -> Wait | None:
        """wait() plus the account's own count of wrong codes."""
        return self._wait(client, email, second_factor=True)

    def _wait(self, client: str, email: str, second_factor: bool) -> Wait | None:
        counters = [_pair(client, email)] + ([_second_factor(email)] if second_factor else [])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in counters:
                pipe.get(key)
                pipe.ttl(key)
            pipe.pttl(_ip_delay(client))
            *counts, delay_ms = pipe.execute()
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; allowing the attempt", error=str(exc))
            return None
        (pair, pair_ttl), codes = (int(counts[0] or 0), counts[1]), counts[2:]
        if pair >= self.limit:
            return Wait(max(1, pair_ttl), "account")
        if delay_ms > 0:
            return Wait(max(1, math.ceil(delay_ms / 1000)), "address")
        if codes and int(codes[0] or 0) >= self.limit:
            return Wait(max(1, codes[1]), "second factor")
        return None

    def record_failure(self, client: str, email: str) -> None:
        """A wrong password: counts for the pair and for the address (which then may have to wait)."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in (_pair(client, email), _ip(client)):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)  # the window starts at the first failure
            _, _, from_address, _ = pipe.execute()
            over = from_address - self.limit
            if over > 0:
                self.redis.set(_ip_delay(client), "1", px=1000 * min(IP_MAX_DELAY, 2 ** (over - 1)))
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; failure not counted", error=str(exc))

    def record_second_factor_failure(self, client: str, email: str) -> None:
        """A wrong code: counts like a wrong password, and for the account's second step."""
        self.record_failure(client, email)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(_second_factor(email))
            pipe.expire(_second_factor(email), self.window, nx=True)
            pipe.execute()
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; failure not counted", error=str(exc))

    def succeeded(self, client: str, email: str) -> None:
        """A completed login clears its pair and the account's wrong codes; the address keeps its count."""
        try:
            self.redis.delete(_pair(client, email), _second_factor(email))
        except RedisError as exc:
            log(logger, logging.WARNING, "login rate limit unavailable; counters not reset", error=str(exc))
