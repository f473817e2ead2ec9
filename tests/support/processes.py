"""A service under test as a real subprocess in its own process group: started, SIGKILLed or SIGTERMed, its log read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness.databases import ROOT


class ServiceProcess:
    """`python ARGS...` run from the project root with `env` over os.environ, output appended to `log_path`."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: str, prefix: tuple[str, ...] = ()):
        self.args = args
        self.prefix = prefix  # e.g. `ip netns exec NAME`: where the process runs
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.prefix, sys.executable, *self.args], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self) -> int | None:
        """SIGTERM; returns the exit code (None: it had to be SIGKILLed after 15 s, or was not running)."""
        return self._signal(signal.SIGTERM, wait=15)

    def _signal(self, sig: int, wait: float = 10) -> int | None:
        if self.proc is None:
            return None
        code = None
        try:
            os.killpg(self.proc.pid, sig)
            code = self.proc.wait(wait)
        except ProcessLookupError:
            code = self.proc.poll()
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        return code

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Launcher:
    """launch(**settings) -> a started `kind(env + settings, log path)`; kill_all() SIGKILLs every one."""

    def __init__(self, kind: type[ServiceProcess], env: dict[str, str], logdir: str, name: str):
        self.kind, self.env, self.logdir, self.name = kind, env, logdir, name
        self.started: list[ServiceProcess] = []

    def __call__(self, **overrides) -> ServiceProcess:
        log_path = os.path.join(self.logdir, f"{self.name}{len(self.started)}.log")
        process = self.kind({**self.env, **{k: str(v) for k, v in overrides.items()}}, log_path).start()
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()
