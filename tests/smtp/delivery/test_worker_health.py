"""A real `python worker.py` beats in Redis: `python worker.py --check` and the dashboard's /readyz see it, and a
worker that stops takes its beat with it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from harness.net import free_port, wait_for
from harness.settings import make_settings
from mailferry import heartbeats
from smtp.delivery.runner import check
from tests.smtp.delivery.conftest import ROOT


def _check_command(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "worker.py", "--check"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)


def _readyz(env) -> int:
    from tests.app.web_fixtures import make_web_app

    app = make_web_app(make_settings(**env))
    try:
        return app.test_client().get("/readyz").status_code
    finally:
        app.extensions["mailferry.db"].dispose()


def test_a_running_worker_is_seen_and_a_stopped_one_is_gone(db, workers, env):
    before = _check_command(env)
    assert before.returncode == 1
    assert before.stderr.strip() == f"no delivery worker on {socket.gethostname()} has sent a heartbeat in the last 60 s"
    assert _readyz(env) == 503

    worker = workers()
    wait_for(lambda: _check_command(env).returncode == 0, timeout=30, what=f"a heartbeat; log:\n{worker.log()}")
    assert _check_command(env).stdout.startswith(f"ok: worker {socket.gethostname()}:")
    assert _readyz(env) == 200

    assert worker.stop() == 0
    assert _check_command(env).returncode == 1 and _readyz(env) == 503


def test_a_beat_older_than_the_limit_or_of_another_host_does_not_count(redis_conn, env):
    settings = make_settings(**env, WORKER_HEARTBEAT_MAX_AGE="30s")
    host = socket.gethostname()
    heartbeats.beat(redis_conn, f"{host}:7:abcd1234", now=time.time() - 31)
    heartbeats.beat(redis_conn, "other-host:8:abcd1234")
    ok, line = check(settings)
    assert not ok and line == f"no delivery worker on {host} has sent a heartbeat in the last 30 s"
    heartbeats.beat(redis_conn, f"{host}:7:abcd1234", now=time.time() - 29)
    assert check(settings)[0]


def test_redis_down_fails_the_check_with_one_line(env):
    url = f"redis://127.0.0.1:{free_port()}/0"
    ok, line = check(make_settings(**{**env, "REDIS_URL": url}))
    assert not ok and line.startswith(f"Redis at {url} did not answer: ")


def test_old_beats_are_forgotten_by_the_next_beat(redis_conn):
    heartbeats.beat(redis_conn, "gone:1:aaaa", now=time.time() - heartbeats.FORGET_AFTER - 1)
    heartbeats.beat(redis_conn, "alive:2:bbbb")
    assert [m.decode() for m in redis_conn.zrange(heartbeats.KEY, 0, -1)] == ["alive:2:bbbb"]
