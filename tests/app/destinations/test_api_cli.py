"""/api/v1/destinations and `flask --app wsgi destinations`: the same service, scoped the same way."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from app import create_app
from app.services.domains import add_domain
from mailferry.models import Mailbox, utcnow
from tests.app.destinations.helpers import mailbox, system_mail_to, verified_settings


@pytest.fixture
def owner_alias(owner_api, owner_domain):
    owner_api("POST", f"/domains/{owner_domain}/aliases", {"local_part": "hi", "destinations": ["bob@dest.test"]},
              status=201)
    return owner_domain


def test_api_lists_resends_and_removes_the_owners_destinations(owner_api, other_api, owner_alias, db):
    [row] = owner_api("GET", "/destinations", status=200).get_json()["destinations"]
    assert (row["address"], row["status"], row["owner"], row["verified_at"]) == \
        ("bob@dest.test", "pending", "owner@people.test", None)
    assert len(system_mail_to(db, "bob@dest.test")) == 1
    error = owner_api("POST", f"/destinations/{row['id']}/resend", status=400).get_json()["error"]
    assert "10 minutes" in error["message"]
    with db.session() as s:
        s.execute(update(Mailbox).values(confirm_sent_at=utcnow().replace(year=2025)))
    owner_api("POST", f"/destinations/{row['id']}/resend", status=200)
    assert len(system_mail_to(db, "bob@dest.test")) == 2
    assert other_api("GET", "/destinations", status=200).get_json()["destinations"] == []
    other_api("POST", f"/destinations/{row['id']}/resend", status=404)
    other_api("DELETE", f"/destinations/{row['id']}", status=404)
    owner_api("DELETE", f"/destinations/{row['id']}", status=400)  # the alias still names it


def test_api_verify_is_for_admins(owner_api, admin_api, owner_alias, db):
    box_id = mailbox(db, "bob@dest.test").id
    owner_api("POST", f"/destinations/{box_id}/verify", status=403)
    body = admin_api("POST", f"/destinations/{box_id}/verify", status=200).get_json()["destination"]
    assert (body["status"], body["verified_by"]) == ("verified", "admin")


def test_api_users_created_by_an_admin_have_a_verified_address(admin_api, db):
    admin_api("POST", "/users", {"email": "made@people.test", "password": "a-long-password"}, status=201)
    assert mailbox(db, "made@people.test", "made@people.test").verified_by == "admin"


@pytest.fixture
def cli_app(db_url, redis_url):
    app = create_app(verified_settings(db_url, redis_url))
    yield app
    app.extensions["mailferry.db"].dispose()


def _cli(app, *args: str, code: int = 0):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == code, (args, result.output)
    return result


def test_cli_list_resend_verify_remove(cli_app, db, owner, other_owner):
    _cli(cli_app, "aliases", "add", "hi@owned.test", "bob@dest.test", code=1)  # no such domain yet
    with db.session() as s:
        add_domain(s, "owned.test", owner)
    _cli(cli_app, "aliases", "add", "hi@owned.test", "bob@dest.test")
    assert len(system_mail_to(db, "bob@dest.test")) == 1
    [row] = json.loads(_cli(cli_app, "destinations", "list", "--json").stdout)
    assert (row["address"], row["status"]) == ("bob@dest.test", "pending")
    assert "less than 10 minutes" in _cli(cli_app, "destinations", "resend", "bob@dest.test", code=1).output
    assert "is verified" in _cli(cli_app, "destinations", "verify", "bob@dest.test").output
    assert mailbox(db, "bob@dest.test").verified_by == "admin"
    assert "is an alias destination" in _cli(cli_app, "destinations", "remove", str(row["id"]), code=1).output
    _cli(cli_app, "aliases", "remove", "hi@owned.test")
    assert "Removed bob@dest.test" in _cli(cli_app, "destinations", "remove", "bob@dest.test").output
    assert json.loads(_cli(cli_app, "destinations", "list", "--json", "--owner", "other@people.test").stdout) == []


def test_cli_create_admin_verifies_the_admins_address(cli_app, db):
    _cli(cli_app, "create-admin", "--email", "root@people.test", "--password", "root-password")
    assert mailbox(db, "root@people.test", "root@people.test").verified_by == "admin"


def test_cli_an_address_of_two_owners_needs_owner(cli_app, db, owner, other_owner):
    with db.session() as s:
        s.add_all([Mailbox(owner_id=owner.id, address="shared@dest.test"),
                   Mailbox(owner_id=other_owner.id, address="shared@dest.test")])
    assert "add --owner" in _cli(cli_app, "destinations", "verify", "shared@dest.test", code=1).output
    _cli(cli_app, "destinations", "verify", "shared@dest.test", "--owner", "other@people.test")
    assert mailbox(db, "shared@dest.test", "other@people.test").verified
    assert not mailbox(db, "shared@dest.test", "owner@people.test").verified

