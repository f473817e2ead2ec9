"""The paths a bench run measures. Each has an entry port the load goes to, recipients there, and a destination
sink port it forwards to; `processes()` are the pids whose memory and CPU count for it."""

from __future__ import annotations

from . import procs
from .postfix import PostfixForwarder

SENDER = "sender@origin.bench.test"
ALIAS_DOMAIN = "alias.bench.test"
DEST_DOMAIN = "dest.bench.test"


def local_parts(count: int) -> list[str]:
    return [f"rcpt{i}" for i in range(count)]


class Path:
    name = "path"
    forwards = True  # False: the entry is the sink itself

    def __init__(self, sink_port: int, recipients: int):
        self.sink_port = sink_port
        self.locals = local_parts(recipients)

    @property
    def entry_port(self) -> int:
        raise NotImplementedError

    @property
    def recipients(self) -> list[str]:
        return [f"{lp}@{ALIAS_DOMAIN}" for lp in self.locals]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def processes(self) -> dict[str, int]:
        """{"label": pid} of the processes that do this path's work."""
        return {}

    def smtp_pids(self) -> list[int]:
        """The SMTP server's processes (for the idle-connection and soak memory figures)."""
        return []

    def stages(self, since) -> dict | None:
        """Where the end-to-end time went for messages received since `since` (naive UTC), when the path can say."""
        return None

    def message_set(self, size: int) -> list[bytes] | None:
        """The messages our load generator sends this path, one per recipient; None: a fresh one each time."""
        return None

    def source_file(self, size: int, workdir: str) -> str | None:
        """The message file smtp-source sends this path (-F); None: smtp-source's own message of `size`."""
        return None

    def start_profile(self, label: str) -> None:
        """Start sampling this path's processes (only Mailferry's are Python)."""

    def stop_profile(self) -> dict | None:
        return None

    def rss(self) -> dict[str, int]:
        out = {}
        for label, pid in self.processes().items():
            out.update({f"{label}:{k}": v for k, v in procs.rss_of(pid, children=True).items()})
        return out

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds used so far by each of this path's processes (with their children)."""
        import psutil

        out = {}
        for label, pid in self.processes().items():
            try:
                root = psutil.Process(pid)
                out[label] = procs.cpu_seconds([root.pid] + [c.pid for c in root.children(recursive=True)])
            except psutil.NoSuchProcess:
                continue
        return out

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_role().values())


class Loopback(Path):
    """smtp-source straight into the sink: the most this machine's loopback can carry."""

    name = "loopback"
    forwards = False

    @property
    def entry_port(self) -> int:
        return self.sink_port

    @property
    def recipients(self) -> list[str]:
        return [f"{lp}@{DEST_DOMAIN}" for lp in self.locals]


class Postfix(Path):
    name = "postfix"

    def __init__(self, sink_port: int, recipients: int, workdir: str, port: int):
        super().__init__(sink_port, recipients)
        self.forwarder = PostfixForwarder(workdir, port, sink_port, ALIAS_DOMAIN, DEST_DOMAIN, self.locals)

    @property
    def entry_port(self) -> int:
        return self.forwarder.port

    def start(self) -> None:
        self.forwarder.start()

    def stop(self) -> None:
        self.forwarder.stop()

    def processes(self) -> dict[str, int]:
        pid = self.forwarder.master_pid()
        return {"postfix": pid} if pid else {}
