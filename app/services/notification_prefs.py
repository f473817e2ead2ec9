"""Which notices an owner gets: one on/off switch per kind (mailferry.models.notification), stored in
User.notification_prefs. A kind never set is on; mailferry.notifications.notify reads the same dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailferry.models import User
from mailferry.models.notification import (
    DELAY_WARNING,
    DESTINATION_SUSPENDED,
    DKIM_ROTATION,
    DNS_BROKEN,
    NOTIFICATION_KINDS,
    QUARANTINE_DIGEST,
)
from mailferry.notifications import wants

from .access import Actor
from .errors import INVALID, NOT_FOUND, ServiceError

# kind -> (label, one line saying when it is sent), in the order the account page lists them
DESCRIPTIONS = {
    DNS_BROKEN: ("A DNS record broke", "Once per break, when the daily re-check finds that a record of one of "
                                       "your domains which used to pass now fails (a DNS timeout is not a break)."),
    DESTINATION_SUSPENDED: ("A destination was suspended", "When a destination address keeps refusing mail and "
                                                           "Mailferry stops forwarding to it, with a re-enable link."),
    QUARANTINE_DIGEST: ("Quarantine digest", "Once a day, only when mail was quarantined since the last digest: "
                                             "sender, subject, domain and why, never the content."),
    DKIM_ROTATION: ("DKIM key rotation", "Once per key, when a domain's active DKIM key gets old enough to be "
                                         "replaced."),
    DELAY_WARNING: ("Delayed mail", "One \"still trying\" message when mail for one of your destinations is "
                                    "still undelivered after hours of retrying (the sender is not told)."),
}


@dataclass(frozen=True)
class Switch:
    """One checkbox of the account page."""

    kind: str
    label: str
    explanation: str
    enabled: bool


def _user(session: Session, user_id: int, actor: Actor) -> User:
    """The account whose switches `actor` may see and change: their own, or any for an admin."""
    user = session.get(User, user_id)
    if user is None or (user.id != actor.id and not actor.is_admin):
        raise ServiceError(NOT_FOUND, f"no user #{user_id}", "user")
    return user


def preferences(session: Session, user_id: int, actor: Actor) -> dict[str, bool]:
    """{kind: on?} for every kind."""
    prefs = _user(session, user_id, actor).notification_prefs
    return {kind: wants(prefs, kind) for kind in NOTIFICATION_KINDS}


def switches(session: Session, user_id: int, actor: Actor) -> list[Switch]:
    current = preferences(session, user_id, actor)
    return [Switch(kind, label, explanation, current[kind]) for kind, (label, explanation) in DESCRIPTIONS.items()]


def set_preferences(session: Session, user_id: int, actor: Actor, changes: Mapping[str, object]) -> dict[str, bool]:
    """Turn kinds on (True) or off (False); kinds left out keep their setting. Returns every kind's setting."""
    for kind, value in changes.items():
        if kind not in NOTIFICATION_KINDS:
            raise ServiceError(INVALID, f"unknown notification kind {kind!r}; the kinds are "
                                        f"{', '.join(NOTIFICATION_KINDS)}", kind)
        if not isinstance(value, bool):
            raise ServiceError(INVALID, f"{kind} must be true or false", kind)
    user = _user(session, user_id, actor)
    # a new dict: the JSON column notices assignment, not mutation in place
    user.notification_prefs = {**preferences(session, user_id, actor), **changes}
    session.flush()
    return preferences(session, user_id, actor)
