"""Postfix's tools as the yardstick: smtp-sink (destination MX), smtp-source (load), a private Postfix forwarder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from . import procs

SBIN = "/usr/sbin"
SINK_COUNTER = re.compile(rb"mesg=(\d+)")


def tool(name: str) -> str:
    path = shutil.which(name) or os.path.join(SBIN, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{name} not found: install Debian's postfix package (scripts/system_deps.sh postfix)")
    return path


class SmtpSink:
    """smtp-sink on 127.0.0.1:PORT; `count()` reads its running counter (-c) of messages received."""

    def __init__(self, workdir: str, port: int):
        self.workdir = workdir
        self.port = port
        self.child: procs.Child | None = None

    def start(self) -> "SmtpSink":
        privileges = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses to keep root privileges
        argv = [tool("smtp-sink"), "-c", *privileges, f"127.0.0.1:{self.port}", "1024"]
        self.child = procs.start_listening("smtp-sink", argv, self.workdir, self.port)
        self._offset = os.path.getsize(self.child.log_path)
        return self

    def count(self) -> int:
        with open(self.child.log_path, "rb") as f:
            f.seek(max(self._offset, os.path.getsize(self.child.log_path) - 256))
            found = SINK_COUNTER.findall(f.read())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        if self.child:
            self.child.stop()
            self.child = None


def smtp_source(port: int, messages: int, sessions: int, size: int, sender: str, recipient: str,
                reuse: bool = False, timeout: float = 600.0, message_file: str | None = None) -> float:
    """Send with smtp-source; return the wall time it took (s). Raises if smtp-source fails. `message_file`: the
    message to send (LF lines: smtp-source sends it as it is, CRLF after each line) instead of its own."""
    argv = [tool("smtp-source"), "-s", str(sessions), "-m", str(messages),
            *(["-F", message_file] if message_file else ["-l", str(size)]),
            "-f", sender, "-t", recipient, "-M", "loadgen.bench.test"]
    if reuse:
        argv.insert(1, "-d")
    started = time.monotonic()
    done = subprocess.run(argv + [f"127.0.0.1:{port}"], capture_output=True, timeout=timeout)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    return elapsed


def _master_cf(port: int) -> str:
    """Debian's master.cf with every service out of chroot and smtpd on our loopback port only."""
    lines = []
    with open("/etc/postfix/master.cf", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if line[:1] in ("#", " ", "\t", "\n") or len(fields) < 8:
                lines.append(line)
                continue
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"
            lines.append("  ".join(fields) + "\n")
    return "".join(lines)


class Unavailable(RuntimeError):
    """This baseline cannot run here (a private Postfix needs root); the run goes on without it."""


class PostfixForwarder:
    """A private Postfix: virtual alias RCPT@alias_domain -> RCPT@dest_domain, dest_domain -> smtp:[127.0.0.1]:SINK.

    Plain forwarding: no DKIM, no SRS (postsrsd-style rewriting off), default concurrency.
    """

    def __init__(self, workdir: str, port: int, sink_port: int, alias_domain: str, dest_domain: str,
                 locals_: list[str]):
        self.dir = os.path.join(workdir, "postfix")
        self.port = port
        self.sink_port = sink_port
        self.alias_domain = alias_domain
        self.dest_domain = dest_domain
        self.locals = locals_
        self.started = False

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def configure(self) -> None:
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        for path in (os.path.dirname(self.dir), self.dir):
            os.chmod(path, 0o755)  # Postfix daemons run as the postfix user and must reach their directories
        self._write("main.cf", "\n".join([
            "compatibility_level = 3.6",
            f"queue_directory = {self.dir}/queue",
            f"data_directory = {self.dir}/data",
            "myhostname = postfix.bench.test",
            "mydomain = bench.test",
            "mydestination =",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            f"virtual_alias_domains = {self.alias_domain}",
            f"virtual_alias_maps = hash:{self.dir}/virtual",
            f"transport_maps = hash:{self.dir}/transport",
            "relay_domains =",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "smtp_dns_support_level = disabled",
            "smtputf8_enable = no",
            "biff = no",
            f"maillog_file = {self.dir}/maillog",
            f"maillog_file_prefixes = {self.dir}",
            "",
        ]))
        self._write("master.cf", _master_cf(self.port))
        self._write("virtual", "".join(f"{lp}@{self.alias_domain} {lp}@{self.dest_domain}\n" for lp in self.locals))
        self._write("transport", f"{self.dest_domain} smtp:[127.0.0.1]:{self.sink_port}\n")
        for table in ("virtual", "transport"):
            self._postfix_tool("postmap", f"hash:{self.dir}/{table}")
        self._postfix_tool("postfix", "check")

    def _postfix_tool(self, name: str, *args: str) -> None:
        done = subprocess.run([tool(name), "-c", self.dir, *args], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{name} -c {self.dir} {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")

    def start(self) -> "PostfixForwarder":
        if os.geteuid() != 0:
            raise Unavailable("a private Postfix instance needs root (postfix -c DIR start)")
        self.configure()
        self._postfix_tool("postfix", "start")
        self.started = True
        from harness.net import wait_port

        wait_port("127.0.0.1", self.port, 20)
        return self

    def master_pid(self) -> int | None:
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid"), encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def rss(self) -> dict[str, int]:
        pid = self.master_pid()
        return procs.rss_of(pid, children=True) if pid else {}

    def cpu_seconds(self) -> float:
        pid = self.master_pid()
        if not pid:
            return 0.0
        import psutil

        try:
            root = psutil.Process(pid)
            return procs.cpu_seconds([root.pid] + [c.pid for c in root.children(recursive=True)])
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        if self.started:
            subprocess.run([tool("postfix"), "-c", self.dir, "stop"], capture_output=True, timeout=60)
            self.started = False
