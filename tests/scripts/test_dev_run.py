"""`make run`'s supervisor: it starts Redis when none answers and rspamd when RSPAMD_URL is not set, migrates
SQLite, runs SMTP + worker + dashboard, and stops all of them on Ctrl-C."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.request
from urllib.parse import urlparse

from harness.net import free_port, wait_port
from mailferry.secret_keys import weakness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_runs_everything_and_stops_on_ctrl_c(tmp_path):
    smtp_port, web_port, redis_port = free_port(), free_port(), free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/mailferry.db",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",  # nothing listens there: dev_run starts its own
        "SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "WEB_LISTEN": f"127.0.0.1:{web_port}",
        "SMTP_HOSTNAME": "mx.dev.test",
        "SMTP_TLS_CERT": "", "SMTP_TLS_KEY": "",
    }
    env_file = tmp_path / ".env"  # a fresh clone has none: the first run writes the SECRET_KEY into it
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "dev_run.py"), "--env-file", str(env_file)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seen = []
        while not any("running:" in line for line in seen):  # printed only once every part listens ...
            line = proc.stdout.readline().decode(errors="replace")
            assert line, "".join(seen)
            seen.append(line)
        for port in (redis_port, smtp_port, web_port):  # ... so each answers at once
            socket.create_connection(("127.0.0.1", port), 2).close()
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            code, banner = client.ehlo()
            assert code == 250 and banner.startswith(b"mx.dev.test")
            assert client.has_extn("starttls")  # the self-signed development certificate
            client.starttls()
            assert client.noop()[0] == 250
        assert os.path.exists(tmp_path / "mailferry.db")
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=40)[0].decode(errors="replace")
    output = "".join(seen) + output
    assert proc.returncode == 0, output
    assert "started Redis" in output
    [key] = re.findall(r"^SECRET_KEY=(.+)$", env_file.read_text(), re.M)
    assert weakness(key) is None
    assert f"wrote a new random SECRET_KEY into {env_file}" in output
    rspamd = re.search(r"started rspamd at http://127\.0\.0\.1:(\d+)", output)  # CI installs rspamd
    assert rspamd, output
    for port in (smtp_port, web_port, redis_port, int(rspamd.group(1))):
        try:
            wait_port("127.0.0.1", port, timeout=0.5)
            raise AssertionError(f"port {port} still open after Ctrl-C:\n{output}")
        except TimeoutError:
            pass


def test_bad_setting_stops_before_starting_anything(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SMTP_MAX_RECIPIENTS": "lots"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "dev_run.py"),
                             "--env-file", str(tmp_path / ".env")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "mailferry: configuration error: SMTP_MAX_RECIPIENTS: expected an integer, got 'lots'"
    assert not (tmp_path / ".env").exists()


def test_a_busy_port_is_one_line_naming_the_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SMTP_LISTEN": f"127.0.0.1:{port}",
               "DATABASE_URL": f"sqlite:///{tmp_path}/mailferry.db", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "dev_run.py"),
                                 "--env-file", str(tmp_path / ".env")], env=env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]  # after the first run's "wrote a new random SECRET_KEY"
    assert "Traceback" not in result.stderr and line.startswith(f"mailferry: SMTP_LISTEN 127.0.0.1:{port} cannot be used (") and "set SMTP_LISTEN" in line
    assert not (tmp_path / "mailferry.db").exists()  # nothing was started


def test_without_redis_url_it_runs_its_own_redis_not_the_one_on_6379(capsys):
    """A system Redis answers on 6379 here; its database 0 may be another application's."""
    spec = importlib.util.spec_from_file_location("dev_run", os.path.join(ROOT, "scripts", "dev_run.py"))
    dev_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev_run)
    env: dict[str, str] = {}
    proc = dev_run.start_redis(env)
    try:
        assert proc is not None and proc.poll() is None
        port = urlparse(env["REDIS_URL"]).port
        assert port != 6379 and env["REDIS_URL"].endswith("/0")
        assert dev_run.redis_answers(env["REDIS_URL"])
        assert f"started Redis at {env['REDIS_URL']}" in capsys.readouterr().err
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
