"""flask --app wsgi stats [--days N] [--json]: the delivery figures, as a table or JSON."""

from __future__ import annotations

import json

from app import create_app
from harness.settings import make_settings
from tests.app.conftest import HOSTNAME
from tests.support.attempts import record_outcomes


def test_stats_json_and_table_after_some_deliveries(db_url, redis_url, redis_conn):
    settings = make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_HOSTNAME=HOSTNAME,
                             SMTP_DELIVERY_MODE="relay", SMTP_HOST="smtp.relay.test",
                             SMTP_RELAYS=json.dumps([{"name": "backup", "host": "backup.relay.test"}]))
    app = create_app(settings)
    db = app.extensions["mailferry.db"]
    try:
        record_outcomes(db, settings, "a@gmail.test", [("relay:primary", 421, False), ("relay:backup", 250, True)])
        record_outcomes(db, settings, "b@gmail.test", [("relay:primary", 250, True)])
        redis_conn.set("mailferry:mx:dns_lookups", 1)
        runner = app.test_cli_runner()

        result = runner.invoke(args=["stats", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["mode"] == "relay" and data["days"] == 7
        assert [(r["name"], r["sent"], r["failed"], r["circuit"]["state"]) for r in data["relays"]] == [
            ("primary", 1, 1, "closed"), ("backup", 1, 0, "closed")]
        assert data["dkim"] == {"signed": 2, "unsigned": 0}
        assert data["mx"]["lookups"] == 1
        assert [(d["domain"], d["attempts"], d["relay_success_rate"]) for d in data["domains"]] == [
            ("gmail.test", 3, 0.667)]

        table = runner.invoke(args=["stats", "--days", "30"])
        assert table.exit_code == 0, table.output
        assert "Delivery mode: relay    (last 30 days" in table.stdout
        assert "DKIM: 2 signed, 0 unsigned" in table.stdout
        assert any(line.split()[:4] == ["primary", "smtp.relay.test", "1", "1"] for line in table.stdout.splitlines())
        assert any(line.startswith("gmail.test") and "66.7%" in line for line in table.stdout.splitlines())

        assert runner.invoke(args=["stats", "--days", "0"]).exit_code == 2
    finally:
        db.dispose()
