"""The dashboard's /metrics over real HTTP: who may read it, and the gauges it reads from the database and Redis."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from werkzeug.serving import make_server

from app.services.tokens import create_token
from harness.net import free_port
from mailferry import heartbeats
from mailferry.models import Message, User, utcnow
from mailferry.models.message import DONE, QUARANTINED, QUEUED
from smtp.routing.breaker import CircuitBreaker
from tests.app.web_fixtures import make_web_app
from tests.support.metrics import Scrape, get, scrape


@pytest.fixture
def serve(app_settings, redis_url):
    """serve(**settings) -> the dashboard's base URL over HTTP on loopback."""
    running = []

    def start(**overrides) -> str:
        app = make_web_app(app_settings.replace(**{"REDIS_URL": redis_url, **overrides}))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        running.append((server, app))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, app in running:
        server.shutdown()
        app.extensions["mailferry.db"].dispose()


def _token(db, user) -> dict[str, str]:
    with db.session() as s:
        _, secret = create_token(s, s.get(User, user.id), "prometheus")
    return {"Authorization": f"Bearer {secret}"}


def _message(db, message_id: str, state: str, age: timedelta) -> None:
    with db.session() as s:
        s.add(Message(id=message_id, rcpt_tos=["a@alias.test"], raw=b"x", state=state, received_at=utcnow() - age))


def test_loopback_reads_without_a_token_by_default(serve):
    status, text = get(f"{serve()}/metrics")
    assert status == 200 and "mailferry_queue_messages" in text


def test_untrusted_address_needs_an_admins_token(serve, db, admin, owner):
    base = serve(METRICS_ALLOWED_IPS=("10.9.9.0/24",))  # the test client on 127.0.0.1 is outside it
    assert get(f"{base}/metrics")[0] == 403
    assert get(f"{base}/metrics", {"Authorization": "Bearer mf_not-a-token"})[0] == 403
    status, body = get(f"{base}/metrics", _token(db, owner))
    assert status == 403 and "admin" in body
    status, text = get(f"{base}/metrics", _token(db, admin))
    assert status == 200 and Scrape(text).value("mailferry_queue_messages", state="queued") == 0


def test_queue_workers_and_circuits_are_read_at_scrape_time(serve, db, redis_conn, app_settings):
    base = serve(SMTP_RELAYS=({"name": "backup", "host": "relay2.test"},))
    _message(db, "OLDQUEUED0000001", QUEUED, timedelta(minutes=30))
    _message(db, "NEWQUEUED0000002", QUEUED, timedelta(seconds=5))
    _message(db, "QUARANTINED00003", QUARANTINED, timedelta(hours=2))
    _message(db, "DONE000000000004", DONE, timedelta(days=2))
    heartbeats.beat(redis_conn, "host-a:41:abcd1234", now=time.time() - 7)
    heartbeats.beat(redis_conn, "host-b:42:abcd1234", now=time.time() - 600)
    breaker = CircuitBreaker(redis_conn, app_settings.RELAY_FAILURE_THRESHOLD, app_settings.RELAY_COOLDOWN)
    for _ in range(app_settings.RELAY_FAILURE_THRESHOLD):
        breaker.record_failure("backup")

    metrics = scrape(base)
    assert metrics.value("mailferry_queue_messages", state="queued") == 2
    assert metrics.value("mailferry_queue_messages", state="quarantined") == 1
    assert 1790 < metrics.value("mailferry_queue_oldest_age_seconds") < 1900
    assert 6 < metrics.value("mailferry_worker_heartbeat_age_seconds", worker="host-a:41:abcd1234") < 60
    assert metrics.value("mailferry_worker_heartbeat_age_seconds", worker="host-b:42:abcd1234") >= 600
    assert metrics.value("mailferry_workers_alive") == 1
    assert metrics.value("mailferry_relay_circuit_state", relay="backup", state="open") == 1
    assert metrics.value("mailferry_relay_circuit_state", relay="backup", state="closed") == 0
    assert metrics.value("mailferry_metrics_source_up", source="database") == 1
    breaker.record_success("backup")
    assert scrape(base).value("mailferry_relay_circuit_state", relay="backup", state="closed") == 1


def test_redis_down_is_said_and_the_database_gauges_stay(serve):
    metrics = scrape(serve(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert metrics.value("mailferry_metrics_source_up", source="redis") == 0
    assert metrics.value("mailferry_metrics_source_up", source="database") == 1
    assert metrics.value("mailferry_queue_messages", state="queued") == 0
