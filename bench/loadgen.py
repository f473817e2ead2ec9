"""Our asyncio load generator: C concurrent SMTP sessions, acceptance latency per message (end of DATA -> 250).

smtp-source gives the throughput Postfix's own tools see; this one gives latencies, can pace its sending rate,
and holds idle connections open for the memory test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .messages import message, stamp_line


class SmtpError(Exception):
    pass


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, end of DATA -> 250
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line.decode(errors="replace").rstrip())
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), "\n".join(lines)


async def _command(reader, writer, line: bytes, expect: int) -> None:
    writer.write(line)
    code, text = await _reply(reader)
    if code != expect:
        raise SmtpError(f"{line.split()[0].decode()} -> {text.splitlines()[-1][:80]}")


class Session:
    """One SMTP connection: EHLO once, then any number of transactions."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        code, text = await _reply(self.reader)
        if code != 220:
            raise SmtpError(f"banner {text[:80]}")
        await _command(self.reader, self.writer, b"EHLO loadgen.bench.test\r\n", 250)

    async def send(self, sender: str, recipient: str, data: bytes) -> float:
        """One transaction; returns the acceptance latency (s) from the end of DATA to the 250.
        The message is stamped with the time its first byte (MAIL FROM) goes out."""
        r, w = self.reader, self.writer
        stamp = stamp_line()
        await _command(r, w, f"MAIL FROM:<{sender}>\r\n".encode(), 250)
        await _command(r, w, f"RCPT TO:<{recipient}>\r\n".encode(), 250)
        await _command(r, w, b"DATA\r\n", 354)
        w.write(stamp)
        w.write(data)
        w.write(b".\r\n")
        await w.drain()
        ended = time.perf_counter()
        code, text = await _reply(r)
        latency = time.perf_counter() - ended
        if code != 250:
            raise SmtpError(f"DATA -> {text.splitlines()[-1][:80]}")
        return latency

    async def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(_reply(self.reader), 5)
        except (OSError, SmtpError, TimeoutError):
            pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
        self.writer = None


async def run_load(host: str, port: int, messages: int, concurrency: int, size: int, sender: str,
                   recipients: list[str], rate: float = 0.0, reuse: bool = False,
                   message_set: list[bytes] | None = None) -> LoadResult:
    """Send `messages` over `concurrency` sessions (a new connection per message unless reuse); `rate` > 0
    paces the sending to that many messages per second. `message_set`: prepared messages, one per recipient
    (e.g. DKIM-signed once), sent instead of a fresh one per message."""
    result = LoadResult()
    counter = iter(range(messages))
    started = time.perf_counter()

    async def one_client() -> None:
        session: Session | None = None
        for seq in counter:
            if rate > 0:
                delay = started + seq / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            data = (message_set[seq % len(message_set)] if message_set
                    else message(size, sender, recipients[seq % len(recipients)], seq))
            try:
                if session is None:
                    session = Session(host, port)
                    await session.open()
                result.latencies.append(await session.send(sender, recipients[seq % len(recipients)], data))
                result.sent += 1
            except (OSError, SmtpError, asyncio.IncompleteReadError) as exc:
                result.failed += 1
                key = str(exc)[:100] or type(exc).__name__
                result.errors[key] = result.errors.get(key, 0) + 1
                if session is not None:
                    session.writer.close()
                session = None
                continue
            if not reuse:
                await session.close()
                session = None
        if session is not None:
            await session.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_idle(host: str, port: int, count: int, batch: int = 100) -> list[Session]:
    """`count` sessions that said EHLO and then stay silent (opened `batch` at a time)."""
    sessions: list[Session] = []
    for first in range(0, count, batch):
        group = [Session(host, port) for _ in range(min(batch, count - first))]
        await asyncio.gather(*(s.open() for s in group))
        sessions.extend(group)
    return sessions


async def close_all(sessions: list[Session]) -> None:
    for session in sessions:
        if session.writer is not None:
            session.writer.close()
    await asyncio.sleep(0)
