"""A private PostgreSQL cluster on a free loopback port that a test may stop (connections refused) and start
again, leaving the machine's own server alone. Run as the `postgres` user when we are root (PostgreSQL
refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from sqlalchemy import create_engine, text

from harness.net import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> str | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    found = [path for path in found if os.access(os.path.join(path, "pg_ctl"), os.X_OK)]
    return found[-1] if found else None


class PostgresCluster:
    def __init__(self, bindir: str, host: str = "127.0.0.1"):
        self.bindir = bindir
        self.host = host  # where clients connect; it also listens on loopback
        self.port = free_port(host)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.workdir = tempfile.mkdtemp(prefix="mf-pg-")  # not under pytest's root-only tmp dir
        self.datadir = os.path.join(self.workdir, "data")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        if host != "127.0.0.1":  # clients in the test's own network namespaces, on subnets of this machine
            with open(os.path.join(self.datadir, "pg_hba.conf"), "a", encoding="utf-8") as hba:
                hba.write("host all all samenet trust\n")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bindir, tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        listen = ",".join(dict.fromkeys(("127.0.0.1", self.host)))
        options = (f"-p {self.port} -c listen_addresses={listen} -k {self.workdir} -c fsync=off"
                   " -c max_connections=100")
        self._run("pg_ctl", "-D", self.datadir, "-o", options, "-l", os.path.join(self.workdir, "log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Fast shutdown: every session is ended, new connections are refused until start()."""
        self._run("pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.workdir, ignore_errors=True)
