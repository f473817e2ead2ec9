"""`python -m smtp` as a user runs it: settings from the environment, several processes, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys

import pytest
from sqlalchemy import select

from harness.databases import ROOT
from harness.net import free_port, wait_port
from harness.settings import TEST_SECRET_KEY
from mailferry.models import Message
from tests.smtp.conftest import seed_world
from tests.smtp.test_server_accept import BODY, QUEUED_REPLY


def environment(**values) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "DATABASE_", "REDIS_"))}
    env.update(PYTHONPATH=ROOT, SECRET_KEY=TEST_SECRET_KEY, SMTP_HOSTNAME="mx.mailferry.test",
               LOG_LEVEL="INFO", REQUIRE_VERIFIED_DESTINATIONS="false")  # seed_world's destinations are made up
    env.update({k: str(v) for k, v in values.items()})
    return env


@pytest.mark.parametrize("processes", [1, 2])
def test_runs_from_the_environment_and_stops_cleanly_on_sigterm(db, db_url, redis_url, tmp_path, processes):
    seed_world(db)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smtp"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        env=environment(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_LISTEN=f"127.0.0.1:{port}",
                        SMTP_SERVER_PROCESSES=processes),
    )
    try:
        wait_port("127.0.0.1", port, timeout=30)
        ids = []
        for n in range(4):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                code, banner = client.ehlo("c.example.org")
                client.mail("s@example.org")
                client.rcpt("john@alias.test")
                code, reply = client.data(BODY + b"%d\r\n" % n)
                assert code == 250
                ids.append(QUEUED_REPLY.match(reply).group(1).decode())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line["msg"] == "listening") == processes
    assert sum(1 for line in lines if line["msg"] == "stopped") == processes
    queued = [line for line in lines if line["msg"] == "queued"]
    assert sorted(line["message_id"] for line in queued) == sorted(ids)
    with db.session() as s:
        assert set(s.scalars(select(Message.id))) == set(ids)


def test_bad_setting_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "smtp"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env=environment(SMTP_LISTEN="nowhere"))
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "SMTP_LISTEN" in run.stderr
