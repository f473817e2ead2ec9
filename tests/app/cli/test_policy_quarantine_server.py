"""flask --app wsgi domains policy, quarantine list|release|delete|purge, server records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job

from mailferry.models import Domain, Message, utcnow
from mailferry.models.message import QUEUED
from mailferry.queue import job_id_for
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import seed_quarantined


@pytest.fixture
def cli_db(cli_app):
    return cli_app.extensions["mailferry.db"]


@pytest.fixture
def domain_id(cli, cli_db) -> int:
    cli("create-admin", "--email", "root@people.test", "--password", "root-password")
    cli("domains", "add", "owned.test", "--owner", "root@people.test")
    with cli_db.session() as s:
        return s.query(Domain).filter_by(name="owned.test").one().id


def test_policy_without_options_prints_the_effective_policy(cli, domain_id):
    out = cli("domains", "policy", "owned.test").stdout
    assert "DMARC fail, sender p=reject:" in out and "reject (instance default)" in out
    assert "rspamd's own actions (instance default)" in out
    data = cli.json("domains", "policy", "owned.test")
    assert data["name"] == "owned.test"
    assert data["policy"]["spam_action"] == {"value": "quarantine", "source": "default", "default": "quarantine"}


def test_policy_options_set_and_reset(cli, cli_db, domain_id):
    data = cli.json("domains", "policy", "owned.test", "--dmarc-reject", "rewrite", "--dmarc-quarantine", "forward",
                    "--spam-action", "reject", "--spam-threshold", "12")
    assert data["policy"]["dmarc_reject_policy"] == {"value": "rewrite", "source": "domain", "default": "reject"}
    assert data["policy"]["spam_threshold"]["value"] == 12.0
    with cli_db.session() as s:
        domain = s.get(Domain, domain_id)
        assert (domain.dmarc_reject_policy, domain.dmarc_quarantine_policy, domain.spam_action,
                domain.spam_threshold) == ("rewrite", "forward", "reject", 12.0)
    assert "is on" in cli("domains", "dmarc-rewrite", "owned.test", "on").stdout  # the old command still works
    out = cli("domains", "policy", "owned.test", "--spam-action", "default", "--spam-threshold", "default").stdout
    assert "(saved)" in out and "quarantine (instance default)" in out
    with cli_db.session() as s:
        domain = s.get(Domain, domain_id)
        assert (domain.spam_action, domain.spam_threshold, domain.dmarc_reject_policy) == (None, None, "rewrite")


@pytest.mark.parametrize("args,option", [(("--dmarc-reject", "forward"), "--dmarc-reject"),
                                         (("--spam-action", "drop"), "--spam-action"),
                                         (("--spam-threshold", "-3"), "--spam-threshold"),
                                         (("--dmarc-quarantine", "rewrite"), "--dmarc-quarantine")])
def test_a_bad_policy_value_is_one_line_and_exit_1(cli, domain_id, args, option):
    result = cli("domains", "policy", "owned.test", *args, code=1)
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"Error: {option}: ")
    assert cli.json("domains", "policy", "owned.test", *args, code=1)["error"]["code"] == "invalid"


def test_quarantine_list_release_delete(cli, cli_db, domain_id, redis_conn):
    seed_quarantined(cli_db, "held1", domain_id)
    seed_quarantined(cli_db, "held2", domain_id)
    out = cli("quarantine", "list", "owned.test").stdout
    assert "held1" in out and "9.50" in out and "Cheap watches" in out and "rspamd: add header" in out
    assert {m["id"] for m in cli.json("quarantine", "list", "owned.test")} == {"held1", "held2"}
    assert cli.json("quarantine", "release", "held1") == {"released": "held1", "enqueued": True}
    assert Job.fetch(job_id_for("held1"), connection=redis_conn).get_status() == "queued"
    assert "Deleted held2" in cli("quarantine", "delete", "held2").stdout
    with cli_db.session() as s:
        assert s.get(Message, "held1").state == QUEUED and s.get(Message, "held2") is None
    assert "Nothing in quarantine" in cli("quarantine", "list", "owned.test").stdout
    assert cli.json("quarantine", "release", "held1", code=1)["error"]["code"] == "invalid"
    assert cli.json("quarantine", "delete", "nope", code=1)["error"]["code"] == "not_found"
    assert cli.json("quarantine", "list", "missing.test", code=1)["error"]["code"] == "not_found"


def test_quarantine_purge(cli, cli_db, domain_id):
    seed_quarantined(cli_db, "old", domain_id, received_at=utcnow() - timedelta(days=30))
    seed_quarantined(cli_db, "new", domain_id)
    assert cli.json("quarantine", "purge") == {"purged": 1, "older_than_days": 14}
    assert "Purged 0" in cli("quarantine", "purge").stdout
    with cli_db.session() as s:
        assert [m.id for m in s.query(Message)] == ["new"]


def test_server_records(cli):
    records = cli.json("server", "records")
    assert [(r["type"], r["name"], r["value"]) for r in records] == [
        ("A", HOSTNAME, SERVER_IP), ("PTR", "25.0.0.127.in-addr.arpa", HOSTNAME), ("TXT", HOSTNAME, "v=spf1 a -all")]
    out = cli("server", "records").stdout
    assert out.startswith(f"DNS records for {HOSTNAME}:") and "v=spf1 a -all" in out and "PTR" in out
