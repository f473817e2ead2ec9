"""flask audit list"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import get_db
from app.services.access import SYSTEM
from app.services.audit import ACTIONS, MAX_PAGE, event_dict, list_events

from .output import cli_command, emit, invocation

audit = AppGroup("audit", help="The audit log of security-relevant actions (append-only).")


@audit.command("list")
@click.option("--action", type=click.Choice(ACTIONS), default=None, help="Only this action.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True, help="How many events.")
@click.option("--before", type=int, default=None, help="Only events older than this event id (paging).")
@cli_command
def list_(action: str | None, limit: int, before: int | None, as_json: bool) -> None:
    """Every owner's events, newest first."""
    with get_db().session() as session:
        page = list_events(session, SYSTEM, action=action, before=before, limit=limit)
        data = [event_dict(e) for e in page.events]
    lines = [f"{e['id']:>6}  {e['at'][:19].replace('T', ' ')}  {e['action']:<26} {e['actor']:<28} {e['summary']}"
             + (f"  [{e['ip']}]" if e["ip"] else "") for e in data]
    if page.next_before:
        lines.append(f"Older: {invocation()} audit list --before {page.next_before}")
    emit(as_json, {"events": data, "next_before": page.next_before}, lines or "No audit events.")
