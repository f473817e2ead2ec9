"""`make run`: the whole service on one machine — SMTP server, RQ worker and dashboard — until Ctrl-C.

Embedded defaults: SQLite under var/, REDIS_URL when it is set and answers or else a Redis of our own on 6390
(from `redis-server` on PATH, installing Debian's package when missing), a self-signed certificate for STARTTLS,
port 2525 for SMTP when not root and SMTP_LISTEN is not configured, and an rspamd of our own (under
var/rspamd) when RSPAMD_URL is not configured and rspamd is installed. Everything else comes from `.env`
(or the file `--env-file` names). It runs in development mode (MAILFERRY_ENV=development) and, without a
strong SECRET_KEY, writes a random one into that file on the first run and uses it from then on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mailferry.queue import make_redis  # noqa: E402
from mailferry.rspamd_config import prepare_dir, rspamd_command, wait_until_pings, write_config  # noqa: E402
from mailferry.secret_keys import key_for_development  # noqa: E402
from mailferry.settings import Settings, parse_listen, read_env_file, settings_or_exit  # noqa: E402

VAR = os.path.join(ROOT, "var")
OWN_REDIS_PORT = 6390  # our own Redis, away from a system Redis on 6379


def say(text: str) -> None:
    print(f"mailferry: {text}", file=sys.stderr, flush=True)


def child_environment(env_file: str, environ: dict[str, str]) -> dict[str, str]:
    """The children's environment: the env file's values under the environment, and a SECRET_KEY that stays
    the same from run to run (the children run in ROOT, so they would not read another env file)."""
    file_values = read_env_file(env_file) if os.path.exists(env_file) else {}
    env = {**file_values, **environ, "PYTHONUNBUFFERED": "1"}
    env["SECRET_KEY"], written = key_for_development(env_file, environ, file_values)
    if written:
        say(f"wrote a new random SECRET_KEY into {env_file}; keep it: it encrypts the DKIM keys")
    return env


def redis_answers(url: str) -> bool:
    try:
        conn = make_redis(url)
        conn.ping()
        conn.close()
        return True
    except Exception:
        return False


def start_redis(env: dict[str, str]) -> subprocess.Popen | None:
    """REDIS_URL when it is set and answers; otherwise a redis-server of our own (append-only, under var/redis).
    Unset, we never borrow whatever Redis runs on 6379: its database 0 may belong to another application."""
    url = env.get("REDIS_URL")
    if url is None:
        return launch_redis(free_loopback_port(OWN_REDIS_PORT), "0", env)
    if redis_answers(url):
        say(f"using Redis at {url}")
        return None
    parsed = urlparse(url)
    port = parsed.port or 6379
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        port = OWN_REDIS_PORT  # REDIS_URL names another host that is down: run a local one beside it
    return launch_redis(port, (parsed.path or "/0").lstrip("/") or "0", env)


def launch_redis(port: int, database: str, env: dict[str, str]) -> subprocess.Popen:
    subprocess.run([os.path.join(ROOT, "scripts", "system_deps.sh"), "redis"], check=True)
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    data = os.path.join(VAR, "redis")
    os.makedirs(data, exist_ok=True)
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", data,
                             "--appendonly", "yes", "--save", "", "--logfile", os.path.join(data, "redis.log")])
    local_url = f"redis://127.0.0.1:{port}/{database}"
    for _ in range(100):
        if redis_answers(local_url):
            env["REDIS_URL"] = local_url
            say(f"started Redis at {local_url} (data in var/redis)")
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    say(f"could not start redis-server on port {port}; see var/redis/redis.log")
    proc.kill()
    raise SystemExit(1)


def free_loopback_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_rspamd(env: dict[str, str]) -> subprocess.Popen | None:
    """Without RSPAMD_URL: a private rspamd on loopback (config and data under var/rspamd, system resolver)."""
    if "RSPAMD_URL" in env:
        return None
    binary = shutil.which("rspamd")
    if not binary:
        say("rspamd not installed: spam filtering off (apt-get install rspamd)")
        return None
    base = os.path.join(VAR, "rspamd")
    confdir, rundir = os.path.join(base, "conf"), os.path.join(base, "run")
    port = free_loopback_port(11333)
    controller = free_loopback_port(11334 if port == 11333 else 0)
    write_config(confdir, scan_port=port, controller_port=controller, hs_cache_dir=rundir)
    prepare_dir(base)
    prepare_dir(rundir)
    proc = subprocess.Popen(rspamd_command(binary, confdir, rundir), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # a first start compiles rspamd's regular expressions (~15 s); later ones reuse var/rspamd/run
    if not wait_until_pings("127.0.0.1", port, 120, alive=lambda: proc.poll() is None):
        say("could not start rspamd; see var/rspamd/run/rspamd.log; spam filtering off")
        stop_group(proc)
        return None
    env["RSPAMD_URL"] = f"http://127.0.0.1:{port}"
    say(f"started rspamd at {env['RSPAMD_URL']} (config and data in var/rspamd)")
    return proc


def stop_group(proc: subprocess.Popen) -> None:
    """rspamd forks its workers: stop the whole process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def ensure_tls(settings: Settings, env: dict[str, str]) -> None:
    if settings.SMTP_TLS_CERT:
        return
    cert, key = os.path.join(VAR, "tls", "cert.pem"), os.path.join(VAR, "tls", "key.pem")
    subprocess.run([sys.executable, "-m", "smtp.certs", cert, key, settings.SMTP_HOSTNAME], check=True, env=env)
    env["SMTP_TLS_CERT"], env["SMTP_TLS_KEY"] = cert, key


def child_commands(settings: Settings) -> dict[str, list[str]]:
    host, port = settings.WEB_LISTEN
    return {
        "smtp": [sys.executable, "-m", "smtp"],
        "worker": [sys.executable, "worker.py"],
        "web": [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"{host}:{port}", "--workers", "2",
                "--access-logfile", "-", "--graceful-timeout", "5"],
    }


def stop_all(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def supervise(procs: dict[str, subprocess.Popen]) -> int:
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    while not stopping:
        for name, proc in procs.items():
            if name != "redis" and proc.poll() is not None:
                say(f"{name} exited with code {proc.returncode}; stopping everything")
                return 1
        time.sleep(0.2)
    say("stopping")
    return 0


def busy_listener(env: dict[str, str], settings: Settings) -> str | None:
    """One line naming the setting whose address cannot be listened on (taken, or a port that needs root)."""
    for name, default in (("SMTP_LISTEN", settings.SMTP_LISTEN), ("WEB_LISTEN", settings.WEB_LISTEN)):
        host, port = parse_listen(env[name]) if name in env else default
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except PermissionError:
                return f"mailferry: {name} {host}:{port} needs root (ports under 1024); set {name} to a higher port in .env"
            except OSError as exc:
                return f"mailferry: {name} {host}:{port} cannot be used ({exc.strerror}); stop what listens there or " \
                       f"set {name} in .env"
    return None


def wait_listening(procs: dict[str, subprocess.Popen], addresses: list[tuple[str, int]], timeout: float = 60) -> bool:
    """Until every address accepts connections; False when a process exited or the time ran out first."""
    deadline = time.monotonic() + timeout
    pending = list(addresses)
    while pending and time.monotonic() < deadline:
        if any(proc.poll() is not None for name, proc in procs.items() if name != "redis"):
            return False
        host, port = pending[0]
        try:
            socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port), 0.5).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.2)
    return not pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run SMTP server, worker and dashboard until Ctrl-C.")
    parser.add_argument("--env-file", default=os.path.join(ROOT, ".env"), help="settings file (default: .env)")
    env_file = os.path.abspath(parser.parse_args(argv).env_file)
    os.chdir(ROOT)
    environ = dict(os.environ, MAILFERRY_ENV="development")
    settings = settings_or_exit(environ, env_file)
    env = child_environment(env_file, environ)
    # a developer's MX hosts are often on loopback or the LAN
    env.setdefault("ALLOW_PRIVATE_DESTINATIONS", "true")
    if "SMTP_LISTEN" not in env and os.geteuid() != 0:
        env["SMTP_LISTEN"] = "0.0.0.0:2525"  # port 25 needs root; a non-root developer gets 2525
    busy = busy_listener(env, settings)
    if busy:
        print(busy, file=sys.stderr)
        return 2
    procs: dict[str, subprocess.Popen] = {}
    redis = start_redis(env)
    if redis:
        procs["redis"] = redis
    rspamd = None
    try:
        rspamd = start_rspamd(env)
        ensure_tls(settings, env)
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], check=True, env=env)
        for name, command in child_commands(settings).items():
            procs[name] = subprocess.Popen(command, env=env)
        web_host, web_port = settings.WEB_LISTEN
        smtp_host, smtp_port = parse_listen(env["SMTP_LISTEN"]) if "SMTP_LISTEN" in env else settings.SMTP_LISTEN
        if not wait_listening(procs, [(smtp_host, smtp_port), (web_host, web_port)]):
            if any(p.poll() is not None for name, p in procs.items() if name != "redis"):
                return supervise(procs)  # says which part exited, and stops the rest
            say("still waiting for the SMTP server or the dashboard to listen after 60 s; see their logs above")
        say(f"running: SMTP on {smtp_host}:{smtp_port}, dashboard on "
            f"http://{web_host}:{web_port}/, database {settings.DATABASE_URL}; Ctrl-C stops")
        say("first time? create an admin: .venv/bin/flask --app wsgi create-admin --email you@example.com --password ...")
        return supervise(procs)
    finally:
        stop_all({k: v for k, v in procs.items() if k != "redis"})
        if rspamd:
            stop_group(rspamd)
        stop_all({k: v for k, v in procs.items() if k == "redis"})


if __name__ == "__main__":
    raise SystemExit(main())
