"""Accounts: create with an Argon2id hash, authenticate, change password, look up by email."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailferry.models import ROLE_ADMIN, ROLE_OWNER, User

from . import audit
from .access import SYSTEM, Actor
from .addresses import split_address
from .errors import EXISTS, FORBIDDEN, INVALID, NOT_FOUND, ServiceError

ROLES = (ROLE_ADMIN, ROLE_OWNER)
MIN_PASSWORD = 8


def make_hasher() -> PasswordHasher:
    """argon2-cffi's defaults: Argon2id with the RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)."""
    return PasswordHasher()


_hasher = make_hasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a missing account costs the same time as a wrong password."""
    return _hasher.hash("mailferry-timing-equaliser")


def normalise_email(email: str, field: str = "email") -> str:
    local, domain = split_address(email, field)
    return f"{local.lower()}@{domain}"


def check_password_strength(password: str, field: str = "password") -> None:
    if len(password or "") < MIN_PASSWORD:
        raise ServiceError(INVALID, f"the password needs at least {MIN_PASSWORD} characters", field)


def find_user(session: Session, email: str) -> User | None:
    try:
        normalised = normalise_email(email)
    except ServiceError:
        return None
    return session.scalar(select(User).where(func.lower(User.email) == normalised))


def get_user_by_email(session: Session, email: str, field: str = "email") -> User:
    user = find_user(session, email)
    if user is None:
        raise ServiceError(NOT_FOUND, f"no user with email {email.strip()!r}", field)
    return user


def create_user(session: Session, email: str, password: str, role: str = ROLE_OWNER, actor: Actor | str = SYSTEM,
                ip: str = "") -> User:
    """A new account; `actor` is who creates it (an admin, the CLI, or audit.SIGNUP for a sign-up)."""
    if role not in ROLES:
        raise ServiceError(INVALID, f"role must be one of {', '.join(ROLES)}", "role")
    normalised = normalise_email(email)
    check_password_strength(password)
    if find_user(session, normalised) is not None:
        raise ServiceError(EXISTS, f"a user with email {normalised} already exists", "email")
    user = User(email=normalised, password_hash=_hasher.hash(password), role=role, active=True)
    session.add(user)
    session.flush()
    audit.record(session, audit.USER_CREATED, actor=actor, owner_id=user.id, object_type="user", object_id=user.id,
                 summary=f"account {user.email} created ({role})", details={"role": role}, ip=ip)
    return user


def promote_to_admin(session: Session, user: User, actor: Actor | str = SYSTEM) -> User:
    """Makes an existing account an active admin (the operator's create-admin for an address that signed up)."""
    before = {"role": user.role, "active": user.active}
    user.role, user.active = ROLE_ADMIN, True
    session.flush()
    _record_user_change(session, user, actor, before)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None. Rehashes when the Argon2 parameters changed."""
    user = find_user(session, email)
    if user is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(user.password_hash, password) or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def change_password(session: Session, user: User, old_password: str, new_password: str, ip: str = "") -> None:
    if not _verify(user.password_hash, old_password):
        raise ServiceError(INVALID, "the current password is wrong", "old_password")
    set_password(session, user, new_password, ip=ip)


def password_matches(user: User, password: str) -> bool:
    return _verify(user.password_hash, password)


def set_password(session: Session, user: User, new_password: str, actor: Actor | None = None, ip: str = "",
                 action: str = audit.PASSWORD_CHANGED) -> None:
    """`actor`: who set it when not the user themselves; `action`: the audit event (a reset by email link)."""
    check_password_strength(new_password, "new_password")
    user.password_hash = _hasher.hash(new_password)
    end_sessions(session, user)
    how = "reset by email link" if action == audit.PASSWORD_RESET else "changed"
    audit.record_user_event(session, action, user, actor=actor, ip=ip, summary=f"password of {user.email} {how}")


def end_sessions(session: Session, user: User) -> None:
    """Every session cookie issued to the user so far stops working (they carry the old version)."""
    user.session_version = (user.session_version or 0) + 1
    session.flush()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise ServiceError(FORBIDDEN, "only an admin can manage users")


def list_users(session: Session, actor: Actor) -> list[User]:
    _require_admin(actor)
    return list(session.scalars(select(User).order_by(User.email)))


def update_user(session: Session, user: User, actor: Actor, *, role: str | None = None,
                active: bool | None = None) -> User:
    """Admins change roles and (de)activate accounts; the last active admin cannot be demoted or deactivated."""
    _require_admin(actor)
    if role is not None and role not in ROLES:
        raise ServiceError(INVALID, f"role must be one of {', '.join(ROLES)}", "role")
    losing_admin = user.is_admin and user.active and (role == ROLE_OWNER or active is False)
    if losing_admin and _active_admins(session) <= 1:
        raise ServiceError(INVALID, "this is the last active admin; make another admin first", "role")
    before = {"role": user.role, "active": user.active}
    if role is not None:
        user.role = role
    if active is not None:
        user.active = bool(active)
    session.flush()
    _record_user_change(session, user, actor, before)
    return user


def _record_user_change(session: Session, user: User, actor: Actor, before: dict) -> None:
    after = {"role": user.role, "active": user.active}
    changed = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
    if changed:
        words = [f"role {user.role}" if "role" in changed else "", "" if "active" not in changed else
                 ("activated" if user.active else "deactivated")]
        audit.record_user_event(session, audit.USER_CHANGED, user, actor=actor, details=changed,
                                summary=f"{user.email}: {', '.join(w for w in words if w)}")


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).where(User.role == ROLE_ADMIN, User.active)) or 0
