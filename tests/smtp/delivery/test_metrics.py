"""The SMTP server's and the worker's metrics ports, scraped over HTTP from the real processes."""

from __future__ import annotations

import json
import re
import smtplib
import threading
import time
from pathlib import Path

from werkzeug.serving import make_server

from harness.net import free_port, wait_for
from tests.app.web_fixtures import make_web_app
from tests.smtp.delivery.conftest import ORIGINAL
from tests.support.metrics import get, scrape


def _ready(base: str) -> bool:
    return get(f"{base}/readyz")[0] == 200


def test_a_delivered_message_moves_the_smtp_and_worker_metrics(world, internet, workers, smtp_servers):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    worker_url, smtp_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    worker = workers(WORKER_METRICS_LISTEN=worker_url[7:])
    inbound = smtp_servers(METRICS_LISTEN=smtp_url[7:])
    wait_for(lambda: _ready(smtp_url) and _ready(worker_url), timeout=30, what="both metrics ports ready")
    assert scrape(worker_url).value("mailferry_deliveries_total") is None  # nothing delivered yet
    idle = scrape(smtp_url)
    connected = idle.value("mailferry_smtp_connections_total")  # the fixture's wait for the port is one
    assert idle.value("mailferry_smtp_refused_total", reason="unknown_recipient") is None

    with smtplib.SMTP(*inbound.address, timeout=10) as client:
        refused = client.sendmail("alice@sender.test", [route.recipient, "nobody@alias.test"], ORIGINAL)
        assert list(refused) == ["nobody@alias.test"]
        assert scrape(smtp_url).value("mailferry_smtp_connections_open") == 1
    wait_for(lambda: sink.messages, timeout=30, what=f"delivery; worker log:\n{worker.log()}")

    def delivered() -> float | None:
        return scrape(worker_url).value("mailferry_deliveries_total", outcome="delivered", route="mx")

    wait_for(lambda: delivered() == 1, timeout=10, what="mailferry_deliveries_total{outcome=delivered,route=mx}")
    after = scrape(worker_url)
    assert after.value("mailferry_delivery_latency_seconds_count") == 1
    assert 0 < after.value("mailferry_delivery_latency_seconds_sum") < 30
    assert after.value("mailferry_dkim_messages_total", signed="true") == 1
    assert after.value("mailferry_mx_lookups_total") == 1
    assert after.value("mailferry_worker_heartbeat_timestamp_seconds") > 0
    smtp = scrape(smtp_url)
    assert smtp.value("mailferry_smtp_connections_total") == connected + 1
    assert smtp.value("mailferry_smtp_connections_open") == 0
    assert smtp.value("mailferry_smtp_messages_accepted_total") == 1
    assert smtp.value("mailferry_smtp_refused_total", reason="unknown_recipient") == 1
    assert smtp.value("mailferry_smtp_spool_commit_seconds_count") >= 1


def _settled(url: str, name: str) -> float:
    """The value once two scrapes 0.3 s apart agree (the probes' sessions may still be ending)."""
    last = None
    for _ in range(50):
        value = scrape(url).value(name)
        if value == last:
            return value
        last = value
        time.sleep(0.3)
    return last


def test_several_smtp_processes_are_summed_on_one_port(world, smtp_servers):
    world.domain("alias.test")
    url = f"http://127.0.0.1:{free_port()}"
    inbound = smtp_servers(METRICS_LISTEN=url[7:], SMTP_SERVER_PROCESSES="3")
    wait_for(lambda: _ready(url), timeout=30, what="the parent's metrics port ready")
    connected = _settled(url, "mailferry_smtp_connections_total")  # the fixture's and readiness's own
    for _ in range(6):  # SO_REUSEPORT spreads them over the processes
        with smtplib.SMTP(*inbound.address, timeout=10) as client:
            client.ehlo("client.sender.test")
            assert client.mail("alice@sender.test")[0] == 250
            assert client.rcpt("nobody@alias.test")[0] == 550
            assert client.rcpt("someone@elsewhere.test")[0] == 550
    # each process writes its own file; a session's last counts land as it closes
    wait_for(lambda: scrape(url).value("mailferry_smtp_connections_total") == connected + 6, timeout=10,
             what="six more connections counted")
    metrics = scrape(url)
    assert metrics.value("mailferry_smtp_refused_total", reason="unknown_recipient") == 6
    assert metrics.value("mailferry_smtp_refused_total", reason="relay_denied") == 6
    inbound.kill()
    wait_for(lambda: get(f"{url}/readyz")[0] != 200, timeout=10, what="readiness gone with the servers")


DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "mailferry.json"
_NAME = re.compile(r"\bmailferry_[a-z_]+\b")


def _dashboard_names() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {name for panel in panels for target in panel["targets"] for name in _NAME.findall(target["expr"])}


def test_the_grafana_dashboard_queries_only_metrics_the_processes_expose(world, workers, smtp_servers, dsettings):
    worker_url, smtp_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    workers(WORKER_METRICS_LISTEN=worker_url[7:])
    smtp_servers(METRICS_LISTEN=smtp_url[7:])
    app = make_web_app(dsettings)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        wait_for(lambda: _ready(smtp_url) and _ready(worker_url), timeout=30, what="both metrics ports ready")
        exposed = set().union(*(scrape(url).exposed for url in
                                (worker_url, smtp_url, f"http://127.0.0.1:{web.server_port}")))
    finally:
        web.shutdown()
        app.extensions["mailferry.db"].dispose()
    referenced = _dashboard_names()
    assert len(referenced) >= 15, referenced
    assert referenced <= exposed, f"the dashboard queries metrics no process exposes: {referenced - exposed}"
