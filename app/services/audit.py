"""The audit log: who did what to which object, when, from where; written in the transaction of the change.

The table is append-only (migration 0004's triggers refuse UPDATE and DELETE). Owners see the events of their
own objects and account (owner_id == them), admins every event. No secret goes in a row: callers pass names,
prefixes and ids, never a token secret or a password.

An actor is a signed-in user (its email is recorded; a view-built actor carries the request's address as
`ip`), SYSTEM (the operator's CLI: recorded as "cli") or one of the labels below for actions without a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.control_chars import first_control_character
from mailferry.models import AuditEvent, Delivery, Domain, User

from .access import SYSTEM, Actor, sees_everything
from .control_chars import refuse_control_characters
from .errors import INVALID, ServiceError

CLI = "cli"  # SYSTEM in a service call: the operator's flask command
SYSTEM_JOB = "system"  # a scheduled job acting on its own
SIGNUP = "signup"  # a new account creating itself
ANONYMOUS = "anonymous"  # not signed in (a failed login)

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGIN_2FA_FAILED = "login_2fa_failed"
TWO_FACTOR_ENABLED = "2fa_enabled"
TWO_FACTOR_DISABLED = "2fa_disabled"
RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
PASSWORD_CHANGED = "password_changed"
PASSWORD_RESET = "password_reset"  # by the link of a reset message
USER_CREATED = "user_created"
USER_CHANGED = "user_changed"
TOKEN_CREATED = "token_created"
TOKEN_REVOKED = "token_revoked"
DOMAIN_ADDED = "domain_added"
DOMAIN_DELETED = "domain_deleted"
DKIM_KEY_GENERATED = "dkim_key_generated"
DKIM_KEY_ACTIVATED = "dkim_key_activated"
ALIAS_CREATED = "alias_created"
ALIAS_CHANGED = "alias_changed"
ALIAS_DELETED = "alias_deleted"
MESSAGE_RETRIED = "message_retried"
MESSAGE_GIVEN_UP = "message_given_up"
MESSAGE_REQUEUED = "message_requeued"
QUARANTINE_RELEASED = "quarantine_released"
QUARANTINE_DELETED = "quarantine_deleted"

ACTIONS = (LOGIN, LOGIN_FAILED, LOGIN_2FA_FAILED, TWO_FACTOR_ENABLED, TWO_FACTOR_DISABLED,
           RECOVERY_CODES_REGENERATED, PASSWORD_CHANGED, PASSWORD_RESET, USER_CREATED, USER_CHANGED, TOKEN_CREATED, TOKEN_REVOKED,
           DOMAIN_ADDED, DOMAIN_DELETED, DKIM_KEY_GENERATED, DKIM_KEY_ACTIVATED, ALIAS_CREATED, ALIAS_CHANGED,
           ALIAS_DELETED, MESSAGE_RETRIED, MESSAGE_GIVEN_UP, MESSAGE_REQUEUED, QUARANTINE_RELEASED,
           QUARANTINE_DELETED)
MAX_PAGE = 200
_LIMITS = {"actor": 320, "object_type": 32, "object_id": 64, "ip": 64}


def actor_label(actor: Actor | str) -> tuple[int | None, str]:
    """(actor_id, actor) as stored: a user's id and email, or None and a label."""
    if isinstance(actor, str):
        return None, actor
    if actor is SYSTEM:
        return None, CLI
    return actor.id, getattr(actor, "email", "") or f"user #{actor.id}"


def record(session: Session, action: str, *, actor: Actor | str, owner_id: int | None, object_type: str,
           object_id: int | str, summary: str, details: dict | None = None, ip: str = "") -> AuditEvent:
    """Append one event in the caller's transaction. `ip` defaults to the address the actor came from."""
    actor_id, label = actor_label(actor)
    values = {"actor": label, "object_type": object_type, "object_id": str(object_id),
              "ip": ip or getattr(actor, "ip", "") or ""}
    event = AuditEvent(action=action, actor_id=actor_id, owner_id=owner_id, summary=summary, details=details,
                       **{k: v[:_LIMITS[k]] for k, v in values.items()})
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class _UserActor:
    """A user acting on their own account before (or without) a session: signing in, changing a password."""

    id: int
    email: str
    ip: str = ""
    is_admin: bool = False


def record_user_event(session: Session, action: str, user: User, *, actor: Actor | str | None = None,
                      summary: str = "", details: dict | None = None, ip: str = "") -> AuditEvent:
    """An event about an account (login, password or 2FA change): the account's owner sees it. The actor is the
    user themselves unless given (an admin acting on them)."""
    who: Actor | str = actor if actor is not None else _UserActor(user.id, user.email, ip)
    return record(session, action, actor=who, owner_id=user.id, object_type="user", object_id=user.id,
                  summary=summary or f"{action.replace('_', ' ')}: {user.email}", details=details, ip=ip)


def record_login_failed(session: Session, email: str, user: User | None, ip: str = "") -> AuditEvent:
    """A wrong password or an unknown address: the account tried sees it, an unknown address only admins."""
    tried = "".join("?" if first_control_character(c) else c for c in (email or "").strip()[:320])
    return record(session, LOGIN_FAILED, actor=ANONYMOUS, owner_id=user.id if user else None, object_type="user",
                  object_id=user.id if user else "", summary=f"failed login as {tried}", details={"email": tried},
                  ip=ip)


def record_message_event(session: Session, action: str, *, actor: Actor | str, message_id: str,
                         deliveries: list[Delivery], summary: str) -> list[AuditEvent]:
    """One event per owner whose deliveries of the message were acted on, naming only that owner's part (a
    message to two owners' aliases shows each their own destinations)."""
    domain_ids = {d.domain_id for d in deliveries if d.domain_id is not None}
    rows = session.execute(select(Domain.id, Domain.owner_id).where(Domain.id.in_(domain_ids))) if domain_ids else []
    owners = {domain_id: owner_id for domain_id, owner_id in rows}
    parts: dict[int | None, list[dict]] = {}
    for delivery in deliveries:
        parts.setdefault(owners.get(delivery.domain_id), []).append(
            {"id": delivery.id, "alias": delivery.recipient, "destination": delivery.destination})
    return [record(session, action, actor=actor, owner_id=owner_id, object_type="message", object_id=message_id,
                   summary=summary, details={"deliveries": part}) for owner_id, part in (parts or {None: []}).items()]


# ---- reading ----

@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # pass as `before` for the next (older) page; None: this is the last


def list_events(session: Session, actor: Actor, *, action: str | None = None, before: int | None = None,
                limit: int = 50) -> AuditPage:
    """Newest first; owners see their own events, admins (and the CLI) all. `before`: an event id (the cursor)."""
    if action and action not in ACTIONS:
        raise ServiceError(INVALID, f"action must be one of {', '.join(ACTIONS)}", "action")
    if not 1 <= limit <= MAX_PAGE:
        raise ServiceError(INVALID, f"limit must be 1-{MAX_PAGE}", "limit")
    query = select(AuditEvent)
    if not sees_everything(actor):
        query = query.where(AuditEvent.owner_id == actor.id)
    if action:
        query = query.where(AuditEvent.action == action)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return AuditPage(rows[:limit], rows[limit - 1].id if more else None)


def parse_cursor(value: str | None, field: str = "before") -> int | None:
    """A `before` cursor from a query string: empty means the newest page."""
    if not value:
        return None
    value = refuse_control_characters(value.strip(), field, "the cursor")
    if not value.isdigit():
        raise ServiceError(INVALID, f"{field} must be an event id", field)
    return int(value)


def event_dict(event: AuditEvent) -> dict:
    return {"id": event.id, "at": event.at.isoformat() + "Z", "actor": event.actor, "actor_id": event.actor_id,
            "owner_id": event.owner_id, "action": event.action, "object_type": event.object_type,
            "object_id": event.object_id, "summary": event.summary, "details": event.details, "ip": event.ip}
