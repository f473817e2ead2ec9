"""A counting destination MX that records when each message arrives (`python -m bench.sink PORT`).

Prints one line per arrival batch: "sent arrived" pairs (time.time(), from the X-Bench-Sent header), so the
bench can compute end-to-end latency. smtp-sink is faster but cannot say when a given message arrived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

from aiosmtpd.smtp import SMTP

from .messages import sent_at


class CountingHandler:
    def __init__(self):
        self.pending: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        arrived = time.time()
        sent = sent_at(envelope.original_content or envelope.content or b"")
        self.pending.append(f"{sent if sent is not None else -1:.6f} {arrived:.6f}")
        return "250 2.0.0 Ok: counted"


async def flush(handler: CountingHandler, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if handler.pending:
            lines, handler.pending = handler.pending, []
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except TimeoutError:
            pass


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    handler = CountingHandler()

    def factory() -> SMTP:
        return SMTP(handler, hostname="sink.bench.test", ident="bench sink", decode_data=False,
                    data_size_limit=64 * 1024 * 1024, timeout=120)

    server = await loop.create_server(factory, "127.0.0.1", port, backlog=1024, reuse_address=True)
    flusher = asyncio.create_task(flush(handler, stop))
    await stop.wait()
    server.close()
    await flusher
    if handler.pending:
        sys.stdout.write("\n".join(handler.pending) + "\n")
        sys.stdout.flush()


class CountingSink:
    """The bench's side: runs `python -m bench.sink PORT` and collects (sent, arrived) pairs as they come."""

    def __init__(self, port: int):
        self.port = port
        self.arrivals: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> "CountingSink":
        from harness.net import wait_port

        from .procs import python_env

        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sink", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=python_env(), cwd=os.getcwd())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_port("127.0.0.1", self.port, 20)
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            sent, arrived = line.split()
            self.arrivals.append((float(sent), float(arrived)))

    def count(self, since: float = 0.0) -> int:
        """Arrivals stamped at or after `since` (time.time()): leftovers of an earlier phase do not count."""
        if not since:
            return len(self.arrivals)
        return sum(1 for sent, _ in self.arrivals if sent >= since)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        if self._reader:
            self._reader.join(5)
        self.proc = None


def main() -> None:
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
