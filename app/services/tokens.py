"""API tokens: the secret is shown once at creation; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.models import ApiToken, User, utcnow

from . import audit
from .access import SYSTEM, Actor
from .control_chars import refuse_control_characters
from .errors import INVALID, NOT_FOUND, ServiceError

TOKEN_PREFIX = "mf_"
MAX_NAME = 100


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "", actor: Actor = SYSTEM) -> tuple[ApiToken, str]:
    """(the stored token, the secret to show once). The audit row names it by its prefix, never the secret."""
    name = refuse_control_characters((name or "").strip(), "name", "the token name")
    if len(name) > MAX_NAME:
        raise ServiceError(INVALID, f"the token name may have at most {MAX_NAME} characters", "name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(secret), prefix=secret[:10])
    session.add(token)
    session.flush()
    _record(session, audit.TOKEN_CREATED, token, actor, f"API token {token.prefix}… ({name or 'unnamed'}) created")
    return token, secret


def _record(session: Session, action: str, token: ApiToken, actor: Actor, summary: str) -> None:
    expires = token.expires_at.isoformat() + "Z" if token.expires_at else None
    audit.record(session, action, actor=actor, owner_id=token.user_id, object_type="token", object_id=token.id,
                 summary=summary, details={"name": token.name, "prefix": token.prefix,
                                           "read_only": bool(token.read_only), "expires_at": expires})


def authenticate_token(session: Session, secret: str) -> User | None:
    """The active user a bearer secret belongs to, else None; records when the token was last used."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.user.active:
        return None
    token.last_used_at = utcnow()
    return token.user


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
