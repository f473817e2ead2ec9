"""/healthz answers while the process lives; /readyz says whether the database, Redis and a worker are there."""

from __future__ import annotations

import time

from harness.net import free_port
from mailferry import heartbeats
from tests.app.web_fixtures import make_web_app


def _get(app, path):
    response = app.test_client().get(path)
    return response.status_code, response.get_json()


def test_ready_with_a_fresh_worker_heartbeat(app_settings, redis_conn):
    heartbeats.beat(redis_conn, "worker-host:41:abcd1234", now=time.time() - 3)
    code, body = _get(make_web_app(app_settings), "/readyz")
    assert code == 200 and body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["database"] == {"ok": True, "detail": "answers"}
    assert body["checks"]["workers"]["detail"].startswith("1 alive, youngest heartbeat 3 s ago")


def test_no_worker_or_only_a_stale_one_is_not_ready(app_settings, redis_conn):
    app = make_web_app(app_settings)
    code, body = _get(app, "/readyz")
    assert code == 503 and body["failed"] == ["workers"]
    assert body["checks"]["workers"]["detail"] == "no delivery worker sent a heartbeat in the last 60 s"
    heartbeats.beat(redis_conn, "worker-host:41:abcd1234", now=time.time() - 61)
    assert _get(app, "/readyz")[0] == 503
    heartbeats.beat(redis_conn, "worker-host:41:abcd1234")
    assert _get(app, "/readyz")[0] == 200
    heartbeats.forget(redis_conn, "worker-host:41:abcd1234")
    assert _get(app, "/readyz")[0] == 503


def test_redis_down_names_redis_and_workers_and_liveness_stays_up(app_settings):
    app = make_web_app(app_settings.replace(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    code, body = _get(app, "/readyz")
    assert code == 503 and body["failed"] == ["redis", "workers"]
    assert body["checks"]["workers"]["detail"] == "unknown: Redis does not answer"
    assert body["checks"]["redis"]["detail"]  # redis-py's reason, e.g. connection refused
    assert _get(app, "/healthz") == (200, {"status": "ok"})


def test_database_down_names_the_database_and_liveness_stays_up(app_settings, redis_conn):
    heartbeats.beat(redis_conn, "worker-host:41:abcd1234")
    app = make_web_app(app_settings.replace(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/test"))
    code, body = _get(app, "/readyz")
    assert code == 503 and body["failed"] == ["database"]
    assert "refused" in body["checks"]["database"]["detail"], body
    assert _get(app, "/healthz") == (200, {"status": "ok"})
