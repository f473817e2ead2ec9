"""The half-finished login of a user with two-factor authentication: right password, code not yet given.

It lives in the signed session cookie under one key, with the user's session version and the time the password
was accepted: it lapses after PENDING_MAX_AGE seconds, and a password change or a logout elsewhere (which move the
session version on) ends it. It is not a login: Flask-Login sees no user until the code is accepted.
"""

from __future__ import annotations

import time

from flask import session
from sqlalchemy.orm import Session

from mailferry.models import User

KEY = "pending_2fa"
PENDING_MAX_AGE = 300


def begin(user: User, next_path: str | None) -> None:
    session.clear()  # whatever the browser had before (another account's session too) ends here
    session[KEY] = {"user": user.id, "version": user.session_version or 0, "at": int(time.time()),
                    "next": next_path}


def pending_user(db_session: Session) -> User | None:
    """The user waiting to give a code, while the state is fresh and still theirs, else None."""
    state = session.get(KEY)
    if not isinstance(state, dict) or not isinstance(state.get("user"), int):
        return None
    if not 0 <= time.time() - state.get("at", 0) <= PENDING_MAX_AGE:
        return None
    user = db_session.get(User, state["user"])
    if user is None or not user.active or (user.session_version or 0) != state.get("version"):
        return None
    return user


def next_path() -> str | None:
    state = session.get(KEY)
    return state.get("next") if isinstance(state, dict) else None


def clear() -> None:
    session.pop(KEY, None)
