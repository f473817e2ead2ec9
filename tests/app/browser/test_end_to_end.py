"""The whole product through the dashboard: sign up, add a domain, publish and verify its records, create an
alias, confirm its destination from the message it receives, send a message to the alias through the inbound SMTP
server, and watch the log show it delivered by the worker.

All real and on loopback: chromium, the dashboard over HTTP, the DNS server, `smtp.server.ServerThread`,
`python worker.py` with RQ, and an aiosmtpd sink as the destination's MX.
"""

from __future__ import annotations

import smtplib
import threading
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from app.services.verification import expected_records
from harness.net import free_port, wait_for
from harness.settings import TEST_SECRET_KEY, make_settings
from mailferry.models import Domain
from smtp.server import ServerThread
from tests.app.conftest import SERVER_IP, publish
from tests.app.destinations.helpers import link_in
from tests.app.web_fixtures import make_web_app
from tests.smtp.delivery.conftest import ORIGINAL, Internet, WorkerProcess


@pytest.fixture
def internet(dns_server):
    net = Internet(dns_server)
    yield net
    net.stop()


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest.fixture
def env(db_url, redis_url, internet, web_port) -> dict[str, str]:
    """One configuration for the dashboard, the SMTP server and the worker: the production default of
    REQUIRE_VERIFIED_DESTINATIONS (make_settings turns it off), links in our mail pointing at the dashboard, and
    no RCPT cache, so a confirmation takes effect at once."""
    return {
        "DATABASE_URL": db_url, "REDIS_URL": redis_url, "RQ_QUEUE": "mf-e2e", "SMTP_HOSTNAME": "mx.mailferry.test",
        "SECRET_KEY": TEST_SECRET_KEY, "SMTP_PUBLIC_IPS": SERVER_IP,
        "DNS_NAMESERVERS": internet.dns.nameservers, "DNS_TIMEOUT": "2", "SMTP_DIRECT_PORT": str(internet.port),
        "SMTP_CONNECT_TIMEOUT": "10", "RETRY_SCHEDULE": "1s", "RECONCILE_INTERVAL": "1s", "LOG_LEVEL": "INFO",
        "ALLOW_PRIVATE_DESTINATIONS": "true", "REQUIRE_VERIFIED_DESTINATIONS": "true",
        "PUBLIC_URL": f"http://127.0.0.1:{web_port}", "SMTP_RECIPIENT_CACHE_TTL": "0",
    }


@contextmanager
def running_stack(env: dict[str, str], log_path: str, port: int = 0):
    """Dashboard (HTTP thread on `port`), inbound SMTP server (thread) and a worker process, all from `env`;
    yields (base_url, smtp address, worker)."""
    settings = make_settings(**env)
    app = make_web_app(settings)
    http = make_server("127.0.0.1", port, app, threaded=True)
    http_thread = threading.Thread(target=http.serve_forever, daemon=True)
    http_thread.start()
    inbound = ServerThread(settings.replace(SMTP_LISTEN=("127.0.0.1", 0)))
    worker = WorkerProcess(env, log_path).start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", inbound.start(), worker
    finally:
        worker.stop()
        inbound.stop()
        http.shutdown()
        http_thread.join(5)
        app.extensions["mailferry.db"].dispose()


@pytest.fixture
def stack(env, tmp_path, web_port):
    with running_stack(env, str(tmp_path / "worker.log"), web_port) as running:
        yield running


def confirm_in(page, link: str) -> None:
    """Open a confirmation link and press Confirm, as its recipient would."""
    page.goto(link)
    expect(page.locator("#link-page")).to_contain_text("wants to forward mail to")
    page.click("#confirm")
    expect(page.locator("#link-done")).to_be_visible()


def test_sign_up_to_delivered_in_the_log(stack, page, shot, db, internet, env):
    base, (smtp_host, smtp_port), worker = stack
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    page.goto(f"{base}/signup")
    page.fill("#email", "e2e@people.test")
    page.fill("#password", "a-long-password")
    page.fill("#confirm", "a-long-password")
    page.click("button[type=submit]")
    page.fill("#name", "ferry.test")
    page.click("text=Add domain")
    page.click("text=Create DKIM key")
    page.wait_for_selector("tr.dkim-key .badge")
    with db.session() as s:
        publish(internet.dns, expected_records(s.query(Domain).filter_by(name="ferry.test").one(), make_settings(**env)))
    page.click("text=Verify now")
    expect(page.locator("h1 >> text=accepting mail")).to_be_visible()

    page.click("text=Aliases")
    page.fill("#address", "hello")
    page.fill("#destinations", "bob@dest.test")
    page.click("text=Create alias")
    expect(page.locator('tr.alias[data-address="hello@ferry.test"]')).to_contain_text("waiting for confirmation")
    wait_for(lambda: sink.messages, timeout=60, what=f"the confirmation; worker log:\n{worker.log()}")
    confirm_in(page, link_in(sink.messages[0].data))
    page.goto(base)
    page.click("main >> text=ferry.test")

    with smtplib.SMTP(smtp_host, smtp_port, timeout=10) as client:
        assert client.sendmail("alice@sender.test", ["hello@ferry.test"], ORIGINAL) == {}
    wait_for(lambda: len(sink.messages) == 2, timeout=60, what=f"delivery; worker log:\n{worker.log()}")
    assert sink.messages[1].rcpt_tos == ("bob@dest.test",)

    page.click("text=Message log")

    def delivered() -> bool:
        page.reload()
        return "delivered" in page.locator("#message-log").inner_text()

    wait_for(delivered, timeout=30, interval=0.5, what="the log to show the delivery")
    row = page.locator("tr.message").first.inner_text()
    assert "alice@sender.test" in row and "bob@dest.test" in row and "via MX mx.dest.test" in row
    shot("delivered")

    page.click("h1 >> text=ferry.test")
    page.click("main >> text=Stats")
    expect(page.locator("#total-received")).to_have_text("1")
    expect(page.locator("#total-forwarded")).to_have_text("1")
    page.click("h1 >> text=ferry.test")
    page.click("text=Aliases")
    expect(page.locator('tr.alias[data-address="hello@ferry.test"] td').nth(3)).to_have_text("1")  # forwarded
    shot("alias-counters")
