"""The CLI round trip through app.test_cli_runner(): plain and --json output, errors and exit codes."""

from __future__ import annotations

from sqlalchemy import select

from app.cli.output import invocation
from app.services import audit
from app.services.users import authenticate, create_user
from app.services.verification import expected_records
from harness.net import free_port
from harness.settings import make_settings
from mailferry.models import AuditEvent, Domain
from smtp.routes import Route, build_message
from tests.app.conftest import HOSTNAME, publish

ADMIN = ["create-admin", "--email", "root@people.test", "--password", "root-password"]


def test_create_admin(cli):
    data = cli.json(*ADMIN)
    assert data == {"id": 1, "email": "root@people.test", "role": "admin", "created": True, "password_changed": True}
    plain = cli("create-admin", "--email", "x@people.test", "--password", "short", code=1)
    assert plain.stderr.strip() == "Error: the password needs at least 8 characters"
    assert plain.stdout == ""
    prompted = cli.runner.invoke(args=["create-admin", "--email", "typed@people.test"],
                                 input="typed-password\ntyped-password\n")
    assert prompted.exit_code == 0 and "Created admin typed@people.test" in prompted.stdout


def test_create_admin_promotes_an_existing_account_and_keeps_its_password_unless_given(cli, cli_app):
    with cli_app.extensions["mailferry.db"].session() as s:
        owner = create_user(s, "signed-up@people.test", "their-password")
        version = owner.session_version or 0
    promoted = cli.json("create-admin", "--email", "Signed-Up@people.test")
    assert promoted == {"id": owner.id, "email": "signed-up@people.test", "role": "admin", "created": False,
                        "password_changed": False}
    with cli_app.extensions["mailferry.db"].session() as s:
        assert authenticate(s, "signed-up@people.test", "their-password").is_admin
    again = cli("create-admin", "--email", "signed-up@people.test", "--password", "a-new-password")
    assert "already had an account: it is an admin now; its password was replaced" in again.stdout
    with cli_app.extensions["mailferry.db"].session() as s:
        assert authenticate(s, "signed-up@people.test", "their-password") is None
        user = authenticate(s, "signed-up@people.test", "a-new-password")
        assert user.is_admin and user.session_version > version  # its old sessions ended
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.owner_id == user.id))]
    assert audit.USER_CHANGED in actions and audit.PASSWORD_CHANGED in actions


def test_usage_errors_exit_2(cli):
    assert "Missing option '--owner'" in cli("domains", "add", "example.test", code=2).stderr
    assert "rsa" in cli("dkim", "generate", "example.test", "--algorithm", "dsa", code=2).stderr


def test_round_trip_add_domain_publish_verify_alias_and_list(cli, cli_app, dns_server):
    cli(*ADMIN)
    added = cli.json("domains", "add", "Example.TEST", "--owner", "ROOT@people.test")
    assert added["name"] == "example.test" and added["owner"] == "root@people.test" and not added["verified"]
    assert [(r["check"], r["name"]) for r in added["records"]] == [
        ("ownership", "_mailferry.example.test"), ("mx", "example.test"), ("spf", "example.test"),
        ("dmarc", "_dmarc.example.test")]

    key = cli.json("dkim", "generate", "example.test")
    assert key["active"] and key["algorithm"] == "rsa"
    assert key["record"]["name"] == f"{key['selector']}._domainkey.example.test"
    assert key["record"]["value"].startswith("v=DKIM1; k=rsa; p=MII")

    not_yet = cli.json("domains", "verify", "example.test", code=3)
    assert not_yet["passed"] is False and not_yet["verified"] is False
    assert {c["name"]: c["ok"] for c in not_yet["checks"]} == dict.fromkeys(
        ("ownership", "mx", "spf", "dkim", "dmarc"), False)

    publish(dns_server, cli.json("domains", "records", "example.test"))
    report = cli.json("domains", "verify", "example.test")
    assert report["passed"] and report["verified"]
    assert all(c["ok"] for c in report["checks"])

    alias = cli.json("aliases", "add", "Sales@example.test", "a@mail.test,b@mail.test")
    assert alias["address"] == "sales@example.test" and alias["destinations"] == ["a@mail.test", "b@mail.test"]
    catch_all = cli.json("aliases", "add", "*@example.test", "c@mail.test")
    assert catch_all["catch_all"] is True
    listed = cli.json("aliases", "list")
    assert [(a["address"], a["destinations"]) for a in listed] == [
        ("*@example.test", ["c@mail.test"]), ("sales@example.test", ["a@mail.test", "b@mail.test"])]
    assert "sales@example.test" in cli("aliases", "list", "--domain", "example.test").stdout
    assert cli.json("domains", "list")[0]["verified"] is True


def test_plain_output_is_readable(cli, dns_server):
    cli(*ADMIN)
    added = cli("domains", "add", "example.test", "--owner", "root@people.test").stdout
    assert "Publish these DNS records" in added and "_mailferry.example.test" in added
    assert f"10 {HOSTNAME}" in added and "domains verify example.test" in added
    generated = cli("dkim", "generate", "example.test", "--algorithm", "ed25519").stdout
    assert "Type:  TXT" in generated and "Value: v=DKIM1; k=ed25519; p=" in generated
    pending = cli("dkim", "generate", "example.test").stdout
    assert "Not signing yet" in pending
    failed = cli("domains", "verify", "example.test", code=3).stdout
    assert "not verified; mail is refused" in failed
    assert "[FAIL] mx        example.test has no MX record" in failed
    assert f"expected: 10 {HOSTNAME}" in failed
    alias = cli("aliases", "add", "sales@example.test", "a@mail.test").stdout
    assert "sales@example.test -> a@mail.test" in alias and "example.test is not verified yet" in alias


def test_force_marks_verified(cli, cli_app):
    cli(*ADMIN)
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    report = cli.json("domains", "verify", "example.test", "--force")
    assert report["verified"] and report["forced"] and not report["passed"]
    with cli_app.extensions["mailferry.db"].session() as s:
        assert s.query(Domain).one().force_verified


def test_dkim_list_and_activate(cli):
    cli(*ADMIN)
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    first = cli.json("dkim", "generate", "example.test")
    second = cli.json("dkim", "generate", "example.test", "--algorithm", "ed25519")
    assert first["active"] and not second["active"]
    switched = cli.json("dkim", "activate", "example.test", second["selector"])
    assert switched["active"]
    keys = cli.json("dkim", "list", "example.test")
    assert [(k["selector"], k["active"]) for k in keys] == [(first["selector"], False), (second["selector"], True)]
    assert all("private" not in str(k).lower() for k in keys)
    assert cli.json("dkim", "activate", "example.test", "nope", code=1)["error"]["code"] == "not_found"


def test_errors_are_one_line_and_non_zero(cli):
    cli(*ADMIN)
    missing_owner = cli.json("domains", "add", "example.test", "--owner", "ghost@people.test", code=1)
    assert missing_owner["error"] == {"code": "not_found", "message": "no user with email 'ghost@people.test'",
                                      "field": "owner"}
    bad_name = cli("domains", "add", "not a domain", "--owner", "root@people.test", code=1)
    assert bad_name.stderr.count("\n") == 1 and "is not a valid domain name" in bad_name.stderr
    assert cli.json("domains", "verify", "unknown.test", code=1)["error"]["code"] == "not_found"
    assert cli.json("dkim", "generate", "unknown.test", code=1)["error"]["code"] == "not_found"
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    invalid = cli.json("aliases", "add", "sales@example.test", "a@mail.test,broken", code=1)
    assert invalid["error"]["code"] == "invalid" and invalid["error"]["field"] == "destinations"
    cli("aliases", "add", "sales@example.test", "a@mail.test")
    assert cli.json("aliases", "add", "sales@example.test", "b@mail.test", code=1)["error"]["code"] == "exists"
    assert cli.json("aliases", "remove", "sales@example.test")["deleted"]["address"] == "sales@example.test"
    assert cli.json("aliases", "remove", "sales@example.test", code=1)["error"]["code"] == "not_found"


def test_queue_status_shows_accepted_messages(cli, cli_app):
    with cli_app.extensions["mailferry.db"].session() as s:
        s.add(build_message("ABCDEFGHIJKLMNOP", mail_from="a@sender.test", raw=b"Subject: x\r\n\r\nhi\r\n",
                            routes=[Route("sales@example.test", ("a@mail.test",))]))
    status = cli.json("queue", "status")
    assert status["messages"]["queued"] == 1 and status["due"] == 1 and status["rq"]["reachable"]
    assert [m["id"] for m in status["recent"]] == ["ABCDEFGHIJKLMNOP"]
    plain = cli("queue", "status").stdout
    assert "Messages: 1 queued" in plain and "ABCDEFGHIJKLMNOP" in plain and "a@mail.test pending" in plain


def test_reverify_all_command(cli, dns_server):
    cli(*ADMIN)
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    publish(dns_server, cli.json("domains", "records", "example.test"))
    assert cli.json("domains", "reverify-all") == {"checked": 1, "passed": 1, "errors": [], "newly_broken": {}, "notices": 0}
    dns_server.remove("example.test", "MX")
    assert cli.json("domains", "reverify-all")["newly_broken"] == {"example.test": ["mx"]}


def test_database_down_is_a_clear_error(redis_url):
    from app import create_app

    app = create_app(make_settings(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nope",
                                   REDIS_URL=redis_url))
    result = app.test_cli_runner().invoke(args=["aliases", "list", "--json"])
    assert result.exit_code == 1
    assert '"code": "unavailable"' in result.stdout and "database error" in result.stdout
    result = app.test_cli_runner().invoke(args=["aliases", "list"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: database error:")
    app.extensions["mailferry.db"].dispose()


def test_expected_records_match_what_the_cli_prints(cli, cli_app):
    cli(*ADMIN)
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    printed = cli.json("domains", "records", "example.test")
    with cli_app.extensions["mailferry.db"].session() as s:
        domain = s.query(Domain).one()
        assert [r["value"] for r in printed] == [r.value for r in expected_records(domain, cli_app.extensions[
            "mailferry.settings"])]


def test_unmigrated_database_says_how_to_fix_it(tmp_path, redis_url):
    from app import create_app

    app = create_app(make_settings(DATABASE_URL=f"sqlite:///{tmp_path}/empty.db", REDIS_URL=redis_url))
    result = app.test_cli_runner().invoke(args=["create-admin", "--email", "a@b.test", "--password", "password1"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: database error: no such table: users "
                                     "(the schema is missing: run `alembic upgrade head`)")
    app.extensions["mailferry.db"].dispose()


def test_control_characters_are_refused_naming_the_field_and_nothing_is_stored(cli):
    cli(*ADMIN)
    refused = [
        (("domains", "add", "x\n.example", "--owner", "root@people.test"), "name"),
        (("aliases", "add", "sales@example.test", "a@mail\r.test"), "destinations"),
        (("aliases", "add", "sales@example.test", "a\t@mail.test"), "destinations"),
        (("aliases", "add", "sa\x00les@example.test", "a@mail.test"), "address"),
        (("aliases", "add", "sales@example.test", "a@mail.test", "--note", "x\r\nBcc: b@evil.test"), "note"),
    ]
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    for args, field in refused:
        error = cli.json(*args, code=1)["error"]
        assert (error["code"], error["field"]) == ("invalid", field), args
        plain = cli(*args, code=1).stderr
        assert plain.count("\n") == 1 and "must not contain line breaks or other control characters" in plain
    # in the comma-separated DESTINATIONS a line feed separates addresses, so it never stays inside one
    assert cli.json("aliases", "add", "sales@example.test", "a@mail\n.test", code=1)["error"]["field"] == "destinations"
    assert [d["name"] for d in cli.json("domains", "list")] == ["example.test"]
    assert cli.json("aliases", "list") == []


def test_hints_name_the_cli_the_way_it_was_run(tmp_path, monkeypatch):
    checkout = tmp_path / "mailferry"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    flask = checkout / ".venv" / "bin" / "flask"
    flask.write_text("")
    flask.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the checkout's venv is not on PATH
    assert invocation(".venv/bin/flask") == ".venv/bin/flask --app wsgi"  # as typed
    assert invocation(str(flask), cwd=str(checkout)) == ".venv/bin/flask --app wsgi"
    monkeypatch.setenv("PATH", f"{flask.parent}:/usr/bin:/bin")  # activated venv or the container's flask
    assert invocation(str(flask), cwd=str(checkout)) == "flask --app wsgi"
    assert invocation("/somewhere/python3 -m pytest") == "flask --app wsgi"
