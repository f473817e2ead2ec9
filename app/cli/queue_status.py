"""flask queue status"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import get_db, get_settings
from app.services.queue_status import queue_status

from .output import cli_command, emit

queue = AppGroup("queue", help="The delivery queue.")


def status_lines(status: dict) -> list[str]:
    m, d, rq = status["messages"], status["deliveries"], status["rq"]
    lines = [
        f"Messages: {m['queued']} queued (due now {status['due']}, being delivered {status['leased']}, "
        f"waiting for the reconciler {status['not_enqueued']}), {m['done']} done",
        f"Deliveries: {d['pending']} pending, {d['deferred']} deferred, {d['delivered']} delivered, "
        f"{d['bounced']} bounced",
    ]
    if status["oldest_queued_at"]:
        lines.append(f"Oldest queued: {status['oldest_queued_at']} ({status['oldest_queued_age_seconds']} s ago)")
    if rq["reachable"]:
        lines.append(f"RQ queue {rq['queue']}: {rq['queued']} waiting, {rq['started']} running, "
                     f"{rq['scheduled']} scheduled, {rq['failed']} failed")
    else:
        lines.append(f"RQ queue {rq['queue']}: Redis unreachable ({rq['error']})")
    for msg in status.get("recent", []):
        states = ", ".join(f"{x['destination']} {x['state']}" for x in msg["deliveries"]) or "no deliveries"
        lines.append(f"  {msg['id']}  {msg['received_at']}  {msg['state']:<6}  from <{msg['mail_from']}>  {states}")
    return lines


@queue.command("status")
@click.option("--recent", default=20, show_default=True, type=click.IntRange(0, 1000),
              help="Also list this many of the newest messages.")
@cli_command
def status(recent: int, as_json: bool) -> None:
    """Counts by state, what is due, the oldest message, RQ's queue and failed registry."""
    with get_db().session() as session:
        data = queue_status(session, get_settings(), recent=recent)
    emit(as_json, data, status_lines(data))
