"""A private rspamd per test session on free loopback ports (restartable), resolving through the test DNS server.

    server = RspamdServer(workdir, dns_nameservers="127.0.0.1:5353"); server.start()
    RspamdClient(server.url, timeout=5)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

from mailferry.rspamd_config import prepare_dir, rspamd_command, wait_until_pings, write_config

from .net import free_port

# Compiled Hyperscan databases outlive the session: compiling them makes a first start take ~13 s, not ~1 s.
HS_CACHE = os.path.join(tempfile.gettempdir(), "mailferry-rspamd-hs-cache")
START_TIMEOUT = 90.0


class RspamdServer:
    def __init__(self, workdir: str, dns_nameservers: str):
        self.workdir = workdir
        self.dns_nameservers = dns_nameservers
        self.port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        binary = shutil.which("rspamd") or ("/usr/bin/rspamd" if os.access("/usr/bin/rspamd", os.X_OK) else None)
        if not binary:
            raise RuntimeError("rspamd is not installed: scripts/system_deps.sh rspamd (apt-get install rspamd)")
        confdir, rundir = os.path.join(self.workdir, "conf"), os.path.join(self.workdir, "run")
        write_config(confdir, scan_port=self.port, controller_port=self.controller_port,
                     nameservers=self.dns_nameservers, hs_cache_dir=HS_CACHE)
        prepare_dir(rundir)
        prepare_dir(HS_CACHE)
        log = open(os.path.join(self.workdir, "rspamd.out"), "ab")
        self.proc = subprocess.Popen(rspamd_command(binary, confdir, rundir), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        if not wait_until_pings("127.0.0.1", self.port, START_TIMEOUT, alive=lambda: self.running):
            self.stop()
            raise RuntimeError(f"rspamd did not answer /ping on {self.url}; see {rundir}/rspamd.log")

    def stop(self) -> None:
        if self.proc is None:
            return
        # rspamd forks workers: the whole process group goes, not just the main process.
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None

    def worker_pids(self) -> list[int]:
        """The main process and its workers (same process group), for reading their CPU time."""
        if not self.running:
            return []
        pgid = self.proc.pid
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.getpgid(int(name)) == pgid:
                        pids.append(int(name))
                except ProcessLookupError:
                    pass
        return pids
