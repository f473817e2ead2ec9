"""flask create-admin --email E --password P; flask reset-2fa --email E"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import get_db
from app.services import two_factor
from app.services.mailboxes import verify_own_address
from app.services.users import ROLE_ADMIN, create_user, get_user_by_email

from .output import cli_command, emit


@click.command("create-admin")
@click.option("--email", required=True, help="The admin's sign-in address.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (prompted when omitted).")
@cli_command
@with_appcontext
def create_admin(email: str, password: str, as_json: bool) -> None:
    """Create an admin account (sees every domain, manages users and the queue)."""
    with get_db().session() as session:
        user = create_user(session, email, password, role=ROLE_ADMIN)
        verify_own_address(session, user)  # the operator typed it: verified by an admin
        data = {"id": user.id, "email": user.email, "role": user.role}
    emit(as_json, data, f"Created admin {data['email']} (id {data['id']}).")


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
