"""The signed-in user as Flask-Login sees it: a detached snapshot that is also the service layer's Actor.

It carries the address the request came from (`ip`), which the audit log records: the view layer knows the
request, the services do not."""

from __future__ import annotations

from flask_login import UserMixin

from mailferry.models import User


def _session_id(user: User) -> str:
    # Signed cookies keep no state on the server, so the id carries the user's session version: logout and a
    # password change bump it, and every cookie issued before stops matching.
    return f"{user.id}:{user.session_version or 0}"


class SessionUser(UserMixin):
    def __init__(self, user: User, ip: str = ""):
        self.id = user.id
        self.ip = ip
        self.email = user.email
        self.role = user.role
        self.is_admin = user.is_admin
        self.two_factor = user.totp_enabled_at is not None
        self._session_id = _session_id(user)

    def get_id(self) -> str:
        return self._session_id


def load_session_user(session, session_id: str, ip: str = "") -> SessionUser | None:
    user_id, _, _version = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = session.get(User, int(user_id))
    if user is None or not user.active or _session_id(user) != session_id:
        return None
    return SessionUser(user, ip)
