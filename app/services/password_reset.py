"""Password reset by email: a signed link to the account's address that works for an hour, and once.

The link carries the user id and a fingerprint of the current password hash: setting any new password (by this
link or otherwise) changes the hash and voids every link sent before. Asking always gets the same answer
whether an account exists or not; requests are limited per address and per client address through Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from mailferry.logs import log
from mailferry.models import User
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage
from mailferry.system_mail.templates import render
from mailferry.system_mail.wording import duration_words

from . import audit
from .errors import INVALID, ServiceError
from .outbox import queue_after_commit
from .users import find_user, set_password

logger = logging.getLogger("mailferry.password_reset")
KIND = "password_reset"
PATH = "/login/reset/"
MAX_AGE = 3600  # seconds a link works
PER_ADDRESS_PER_HOUR = 3  # messages to one address; more requests are answered alike but send nothing
PER_CLIENT_PER_HOUR = 10  # requests from one client address; more get 429
KEY = "mailferry:password-reset:{kind}:{value}"
LINK_REFUSED = "This reset link has expired or was already used: ask for a new one."


@dataclass(frozen=True)
class Requested:
    """What happened to a request, for the caller's log and answer (the page says the same either way)."""

    sent: bool
    client_wait: int = 0  # > 0: this client asked too often; seconds until it may again


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.SECRET_KEY, salt="mailferry-password-reset")


def _fingerprint(settings: Settings, user: User) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), user.password_hash.encode(), hashlib.sha256).hexdigest()[:24]


def make_link(settings: Settings, user: User) -> str:
    token = _serializer(settings).dumps([user.id, _fingerprint(settings, user)])
    return settings.public_url + PATH + token


def _over(redis: Redis, kind: str, value: str, limit: int) -> int:
    """Counts one more in this hour's window; the seconds left in it when over `limit`, else 0."""
    key = KEY.format(kind=kind, value=value)
    try:
        with redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600, nx=True)
            pipe.ttl(key)
            count, _, ttl = pipe.execute()
    except RedisError as exc:  # like the login limiter: an outage must not lock people out
        log(logger, logging.WARNING, "password reset limiter unavailable", error=type(exc).__name__)
        return 0
    return max(int(ttl), 1) if count > limit else 0


def request_reset(session: Session, settings: Settings, redis: Redis, email: str, client: str) -> Requested:
    wait = _over(redis, "client", client, PER_CLIENT_PER_HOUR)
    if wait:
        return Requested(sent=False, client_wait=wait)
    user = find_user(session, email)
    if user is None or not user.active:
        return Requested(sent=False)
    if _over(redis, "account", str(user.id), PER_ADDRESS_PER_HOUR):
        log(logger, logging.INFO, "password reset not sent: too many for this account", user_id=user.id)
        return Requested(sent=False)
    text, html = render(KIND, address=user.email, url=make_link(settings, user), valid=duration_words(MAX_AGE),
                        client=client)
    queue_after_commit(session, settings, SystemMessage(user.email, "Reset your Mailferry password", text, html, KIND))
    return Requested(sent=True)


def user_for_link(session: Session, settings: Settings, token: str, max_age: int = MAX_AGE) -> User:
    """The account a link resets, or ServiceError when it is forged, expired or spent."""
    try:
        user_id, fingerprint = _serializer(settings).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature, ValueError, TypeError):
        raise ServiceError(INVALID, LINK_REFUSED, "token") from None
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or not hmac.compare_digest(str(fingerprint), _fingerprint(settings, user)):
        raise ServiceError(INVALID, LINK_REFUSED, "token")
    return user


def reset_password(session: Session, settings: Settings, token: str, new_password: str, client: str) -> User:
    """Sets the new password and ends every session. Two-factor authentication stays as it was."""
    user = user_for_link(session, settings, token)
    set_password(session, user, new_password, ip=client, action=audit.PASSWORD_RESET)
    return user
