"""A private redis-server per test session on a free loopback port (restartable, isolated)."""

from __future__ import annotations

import shutil
import subprocess

from .net import free_port, wait_port


class RedisServer:
    def __init__(self, workdir: str, host: str = "127.0.0.1"):
        self.workdir = workdir
        self.host = host
        self.port = free_port(host)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server not on PATH (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--daemonize", "no", "--loglevel", "warning",
             # off the loopback (a test's own network namespaces) Redis would refuse clients without a password
             "--protected-mode", "yes" if self.host == "127.0.0.1" else "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
