"""`python -m smtp --check`: the container healthcheck of the SMTP service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from harness.net import free_port
from harness.settings import TEST_SECRET_KEY
from smtp.check import check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_running_server_passes_and_a_wildcard_listen_is_checked_on_loopback(server, settings):
    host, port = server
    ok, line = check(settings.replace(SMTP_LISTEN=("0.0.0.0", port)))
    assert ok and line.startswith(f"ok: 127.0.0.1:{port} greeted with 220 mx.mailferry.test"), line


def test_nothing_listening_fails_with_one_line(settings):
    port = free_port()
    ok, line = check(settings.replace(SMTP_LISTEN=("127.0.0.1", port)))
    assert not ok and line.startswith(f"no SMTP server answered on 127.0.0.1:{port}: "), line


def test_a_listener_that_is_not_our_greeting_fails(settings):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        # it accepts (the kernel completes the handshake) but never greets: the check times out, it does not hang
        ok, line = check(settings.replace(SMTP_LISTEN=("127.0.0.1", port)), timeout=1)
    assert not ok and "no SMTP server answered" in line, line


def test_the_command_exits_0_or_1_with_its_line(server):
    _host, port = server
    env = {**os.environ, "SECRET_KEY": TEST_SECRET_KEY, "SMTP_HOSTNAME": "mx.mailferry.test"}
    good = subprocess.run([sys.executable, "-m", "smtp", "--check"], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "SMTP_LISTEN": f"0.0.0.0:{port}"}, timeout=30)
    assert good.returncode == 0 and good.stdout.startswith("ok: "), good.stderr
    bad = subprocess.run([sys.executable, "-m", "smtp", "--check"], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "SMTP_LISTEN": f"127.0.0.1:{free_port()}"}, timeout=30)
    assert bad.returncode == 1 and bad.stderr.startswith("no SMTP server answered"), (bad.stdout, bad.stderr)
