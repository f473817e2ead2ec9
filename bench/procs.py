"""Child processes of a bench run: start, wait for a port, stop, and measure their resident memory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

import psutil

from harness.net import wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Child:
    """One started program; `name` labels it in RSS reports."""

    name: str
    proc: subprocess.Popen
    log_path: str | None = None
    _log: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 20) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def start(name: str, argv: list[str], workdir: str, env: dict | None = None, cwd: str | None = None) -> Child:
    """Start argv with stdout+stderr in WORKDIR/NAME.log."""
    log_path = os.path.join(workdir, f"{name}.log")
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd or workdir)
    return Child(name, proc, log_path, log)


def start_listening(name: str, argv: list[str], workdir: str, port: int, env: dict | None = None,
                    cwd: str | None = None, timeout: float = 20.0) -> Child:
    child = start(name, argv, workdir, env=env, cwd=cwd)
    try:
        wait_port("127.0.0.1", port, timeout)
    except TimeoutError:
        child.stop()
        raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}:\n{child.tail()}") from None
    if not child.alive():
        raise RuntimeError(f"{name} exited at start:\n{child.tail()}")
    return child


def python_env(**extra: str) -> dict:
    """The environment for our own Python programs: the project on sys.path, no .env from the caller's cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "DATABASE_", "REDIS_", "RQ_", "DNS_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def rss_of(pid: int, children: bool = False) -> dict[str, int]:
    """{"name[pid]": rss bytes} for pid and, optionally, all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root] + (root.children(recursive=True) if children else [])
    except psutil.NoSuchProcess:
        return {}
    out = {}
    for p in procs:
        try:
            out[f"{p.name()}[{p.pid}]"] = p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return out


def total_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss(pids: list[int]) -> int:
    """Total RSS of the processes and all their descendants."""
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [root] + root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (and their reaped children)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def wait_until(predicate, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
