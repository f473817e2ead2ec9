"""Per-user API tokens: the secret is shown once; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.models import ApiToken, User, utcnow

from .errors import INVALID, NOT_FOUND, ServiceError

TOKEN_PREFIX = "mf_"
MAX_NAME = 100


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, user_id: int, name: str) -> tuple[ApiToken, str]:
    """A new token for the user and its secret (returned only here)."""
    name = (name or "").strip()
    if not name:
        raise ServiceError(INVALID, "give the token a name", "name")
    if len(name) > MAX_NAME:
        raise ServiceError(INVALID, f"the name may have at most {MAX_NAME} characters", "name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user_id, name=name, token_hash=_digest(secret), prefix=secret[:10])
    session.add(token)
    session.flush()
    return token, secret


def user_for_token(session: Session, secret: str) -> User | None:
    """The active owner of the token, else None; records when the token was last used."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or not token.user.active:
        return None
    token.last_used_at = utcnow()
    return token.user


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))


def revoke_token(session: Session, user_id: int, token_id: int) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    if token is None:
        raise ServiceError(NOT_FOUND, f"no token #{token_id}", "token")
    session.delete(token)
    session.flush()
