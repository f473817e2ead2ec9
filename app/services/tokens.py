"""API tokens: the secret is shown once at creation; only its SHA-256 is stored. A token may expire and may be
read-only (GET and HEAD only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.models import ApiToken, User, utcnow

from . import audit
from .access import SYSTEM, Actor
from .control_chars import refuse_control_characters
from .errors import INVALID, NOT_FOUND, ServiceError

TOKEN_PREFIX = "mf_"
MAX_NAME = 100
MAX_EXPIRY_DAYS = 365
EXPIRY_CHOICES = (None, 30, 90, 365)  # what the dashboard offers; the API takes any 1-MAX_EXPIRY_DAYS
READ_METHODS = frozenset({"GET", "HEAD"})


class TokenRefused(Exception):
    """A bearer secret that does not authenticate: `reason` is "unknown" (or revoked) or "expired"."""

    def __init__(self, reason: str, expires_at: datetime | None = None):
        super().__init__(reason)
        self.reason = reason
        self.expires_at = expires_at


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "", expires_in_days: int | None = None,
                 read_only: bool = False, not_after: datetime | None = None,
                 actor: Actor = SYSTEM) -> tuple[ApiToken, str]:
    """(the stored token, the secret to show once). `not_after`: the latest expiry allowed (a token made with an
    expiring token may not outlive it). The audit row names it by its prefix, never the secret."""
    name = refuse_control_characters((name or "").strip(), "name", "the token name")
    if len(name) > MAX_NAME:
        raise ServiceError(INVALID, f"the token name may have at most {MAX_NAME} characters", "name")
    expires_at = _expiry(expires_in_days, not_after)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(secret), prefix=secret[:10],
                     expires_at=expires_at, read_only=bool(read_only))
    session.add(token)
    session.flush()
    _record(session, audit.TOKEN_CREATED, token, actor, f"API token {token.prefix}… ({name or 'unnamed'}) created")
    return token, secret


def _expiry(days: int | None, not_after: datetime | None) -> datetime | None:
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_EXPIRY_DAYS):
        raise ServiceError(INVALID, f"expires_in_days must be 1-{MAX_EXPIRY_DAYS}, or absent for no expiry",
                           "expires_in_days")
    expires_at = utcnow() + timedelta(days=days) if days is not None else None
    if not_after is not None and (expires_at is None or expires_at > not_after):
        raise ServiceError(INVALID, "a token made with an expiring token must expire no later than it "
                           f"({not_after.isoformat()}Z)", "expires_in_days")
    return expires_at


def _record(session: Session, action: str, token: ApiToken, actor: Actor, summary: str) -> None:
    expires = token.expires_at.isoformat() + "Z" if token.expires_at else None
    audit.record(session, action, actor=actor, owner_id=token.user_id, object_type="token", object_id=token.id,
                 summary=summary, details={"name": token.name, "prefix": token.prefix,
                                           "read_only": bool(token.read_only), "expires_at": expires})


def authenticate_token(session: Session, secret: str) -> ApiToken:
    """The token a bearer secret names, of an active user; records when it was last used. Raises TokenRefused."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        raise TokenRefused("unknown")
    digest = _digest(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.user.active:
        raise TokenRefused("unknown")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise TokenRefused("expired", token.expires_at)
    token.last_used_at = utcnow()
    return token


def allows(token: ApiToken, method: str) -> bool:
    """A read-only token may only read."""
    return not token.read_only or method.upper() in READ_METHODS


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, actor: Actor) -> None:
    """Owners revoke their own tokens; admins any."""
    query = select(ApiToken).where(ApiToken.id == token_id)
    if not actor.is_admin:
        query = query.where(ApiToken.user_id == actor.id)
    token = session.scalar(query)
    if token is None:
        raise ServiceError(NOT_FOUND, f"no API token #{token_id}", "token")
    _record(session, audit.TOKEN_REVOKED, token, actor, f"API token {token.prefix}… ({token.name or 'unnamed'}) revoked")
    session.delete(token)
    session.flush()


def token_dict(token: ApiToken) -> dict:
    """A token as the API shows it: never its secret or hash."""
    times = {name: getattr(token, name) for name in ("created_at", "last_used_at", "expires_at")}
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "read_only": token.read_only,
            **{name: value.isoformat() + "Z" if value else None for name, value in times.items()}}
