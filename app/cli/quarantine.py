"""flask quarantine list|release|delete|purge"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import get_db, get_rq_queue, get_settings
from app.services import quarantine as held
from app.services.domains import get_domain
from app.services.message_log import dispatch_now

from .output import cli_command, emit

quarantine = AppGroup("quarantine", help="Mail held by the inbound checks: list, release, delete, purge.")


@quarantine.command("list")
@click.argument("name")
@cli_command
def list_(name: str, as_json: bool) -> None:
    """NAME's quarantined messages, newest first."""
    with get_db().session() as session:
        rows = held.list_quarantine(session, get_domain(session, name))
    lines = [f"{m.id}  {m.received_at:%Y-%m-%d %H:%M}  "
             f"{'-' if m.spam_score is None else format(m.spam_score, '.2f'):>6}  {m.mail_from or '<>'}  "
             f"{m.subject!r}\n    {m.filter_reason}" for m in rows]
    emit(as_json, [m.to_dict() for m in rows], lines or f"Nothing in quarantine for {name}.")


@quarantine.command("release")
@click.argument("message_id")
@cli_command
def release(message_id: str, as_json: bool) -> None:
    """Forward MESSAGE_ID as usual."""
    with get_db().session() as session:
        held.release(session, held.get_held(session, message_id))
    enqueued = dispatch_now(get_rq_queue(), message_id)
    emit(as_json, {"released": message_id, "enqueued": enqueued},
         f"Released {message_id}." + ("" if enqueued else " Redis is down: the worker picks it up when it is back."))


@quarantine.command("delete")
@click.argument("message_id")
@cli_command
def delete(message_id: str, as_json: bool) -> None:
    """Delete quarantined MESSAGE_ID."""
    with get_db().session() as session:
        held.delete_held(session, held.get_held(session, message_id))
    emit(as_json, {"deleted": message_id}, f"Deleted {message_id}.")


@quarantine.command("purge")
@cli_command
def purge(as_json: bool) -> None:
    """Delete quarantined messages older than QUARANTINE_DAYS (the worker does it hourly)."""
    with get_db().session() as session:
        count = held.purge(session, get_settings())
    emit(as_json, {"purged": count, "older_than_days": get_settings().QUARANTINE_DAYS},
         f"Purged {count} quarantined messages older than {get_settings().QUARANTINE_DAYS} days.")
