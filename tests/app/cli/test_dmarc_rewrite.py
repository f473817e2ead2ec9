"""flask --app wsgi domains dmarc-rewrite NAME on|off: the per-domain From rewrite for DMARC p=reject senders."""

from __future__ import annotations

from mailferry.models import Domain


def test_turn_the_rewrite_on_and_off(cli, cli_app):
    cli("create-admin", "--email", "root@people.test", "--password", "root-password")
    cli("domains", "add", "example.test", "--owner", "root@people.test")
    db = cli_app.extensions["mailferry.db"]

    def flag() -> bool:
        with db.session() as s:
            return s.query(Domain).filter_by(name="example.test").one().rewrite_from_for_dmarc_reject

    assert flag() is False  # off by default
    assert cli.json("domains", "dmarc-rewrite", "example.test", "on") == {
        "name": "example.test", "rewrite_from_for_dmarc_reject": True}
    assert flag() is True
    assert "is off" in cli("domains", "dmarc-rewrite", "example.test", "off").stdout
    assert flag() is False
    assert cli.json("domains", "dmarc-rewrite", "missing.test", "on", code=1)["error"]["code"]
