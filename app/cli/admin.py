"""flask create-admin --email E [--password P]; flask reset-2fa --email E"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import get_db
from app.services import two_factor
from app.services.access import SYSTEM
from app.services.mailboxes import verify_own_address
from app.services.users import ROLE_ADMIN, create_user, find_user, get_user_by_email, promote_to_admin, set_password

from .output import cli_command, emit


@click.command("create-admin")
@click.option("--email", required=True, help="The admin's sign-in address.")
@click.option("--password", default=None,
              help="At least 8 characters (prompted when omitted for a new account); for an existing account it "
                   "replaces the password and ends its sessions.")
@cli_command
@with_appcontext
def create_admin(email: str, password: str | None, as_json: bool) -> None:
    """Create an admin account, or make an existing account admin (sees every domain, manages users and the queue)."""
    with get_db().session() as session:
        user = find_user(session, email)
        created = user is None
        if created:
            if password is None:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            user = create_user(session, email, password, role=ROLE_ADMIN)
        else:
            promote_to_admin(session, user)
            if password is not None:
                set_password(session, user, password, actor=SYSTEM)
        verify_own_address(session, user)  # the operator typed it: verified by an admin
        data = {"id": user.id, "email": user.email, "role": user.role, "created": created,
                "password_changed": created or password is not None}
    emit(as_json, data, _created_line(data))


def _created_line(data: dict) -> str:
    if data["created"]:
        return f"Created admin {data['email']} (id {data['id']})."
    kept = "its password was replaced and its sessions ended" if data["password_changed"] else "its password is unchanged"
    return f"{data['email']} (id {data['id']}) already had an account: it is an admin now; {kept}."


@click.command("reset-2fa")
@click.option("--email", required=True, help="The account that lost its authenticator and recovery codes.")
@cli_command
@with_appcontext
def reset_two_factor(email: str, as_json: bool) -> None:
    """Turn two-factor authentication off for an account (it signs in with its password again)."""
    with get_db().session() as session:
        user = get_user_by_email(session, email)
        was_on = two_factor.is_enabled(user)
        two_factor.reset(session, user)
        data = {"email": user.email, "two_factor_was_on": was_on}
    emit(as_json, data, f"Two-factor authentication is off for {data['email']}" + ("." if was_on else " (it was not on)."))
