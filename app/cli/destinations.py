"""flask destinations list|resend|verify|reenable|remove"""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import get_db, get_settings
from app.services import mailboxes
from app.services.access import SYSTEM
from app.services.errors import INVALID, NOT_FOUND, ServiceError
from app.services.users import get_user_by_email, normalise_email
from mailferry.models import Mailbox

from .output import cli_command, emit

destinations = AppGroup("destinations", help="Destination addresses: whether they are verified, confirmation links.")
TARGET = click.argument("target")
OWNER = click.option("--owner", default=None, help="The owner's email, when several accounts use the address.")


def _find(session, target: str, owner: str | None) -> Mailbox:
    """TARGET is a destination id or an address (unique, or narrowed by --owner)."""
    if target.isdigit():
        return mailboxes.get_mailbox(session, int(target), SYSTEM)
    query = select(Mailbox).where(Mailbox.address == normalise_email(target, "target"))
    if owner:
        query = query.where(Mailbox.owner_id == get_user_by_email(session, owner, "owner").id)
    found = list(session.scalars(query))
    if not found:
        raise ServiceError(NOT_FOUND, f"no destination {target}", "target")
    if len(found) > 1:
        raise ServiceError(INVALID, f"{target} is a destination of {len(found)} accounts: add --owner", "owner")
    return found[0]


def _line(d: dict) -> str:
    return f"#{d['id']:<5} {d['address']:<40} {d['status']:<10} {d['owner']}"


@destinations.command("list")
@click.option("--owner", default=None, help="Only this owner's destinations.")
@cli_command
def list_(owner: str | None, as_json: bool) -> None:
    """Every destination with its owner and status (verified, pending, suspended)."""
    with get_db().session() as session:
        rows = mailboxes.list_mailboxes(session, SYSTEM)
        if owner:
            owner_id = get_user_by_email(session, owner, "owner").id
            rows = [m for m in rows if m.owner_id == owner_id]
        data = [mailboxes.mailbox_dict(m) for m in rows]
    emit(as_json, data, [_line(d) for d in data] or "No destinations.")


def _command(name: str, help_text: str, action, done: str) -> None:
    @destinations.command(name, help=help_text)
    @TARGET
    @OWNER
    @cli_command
    def command(target: str, owner: str | None, as_json: bool) -> None:
        with get_db().session() as session:
            mailbox = _find(session, target, owner)
            data = mailboxes.mailbox_dict(mailbox)
            result = action(session, mailbox)
            if result is not None:
                data = mailboxes.mailbox_dict(result)
        emit(as_json, data, done.format(**data))


_command("resend", "Send TARGET (an id or address) a new confirmation link.",
         lambda s, m: mailboxes.resend(s, m, SYSTEM, get_settings()), "Sent a new confirmation link to {address}.")
_command("verify", "Mark TARGET verified without a link (the operator vouches for it).",
         lambda s, m: mailboxes.mark_verified(s, m, SYSTEM), "{address} is verified.")
_command("reenable", "Lift the suspension of TARGET.",
         lambda s, m: mailboxes.reenable(s, m, SYSTEM, get_settings()), "{address} is re-enabled.")
_command("remove", "Delete TARGET (refused while an alias names it).",
         lambda s, m: mailboxes.remove(s, m, SYSTEM), "Removed {address}.")
