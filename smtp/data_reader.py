"""Reading the DATA section in large chunks instead of aiosmtpd's one `readuntil()` per line.

aiosmtpd 1.4.6 spends most of a message's event-loop time in its per-line DATA loop; here the
terminator is found with one C-level search per received chunk, then the whole message is
dot-unstuffed with one `replace`. Bytes a pipelining client sent after the terminator are
returned so the command loop reads them next.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import replies

TERMINATOR = b"\r\n.\r\n"
READ_SIZE = 1 << 20  # larger than anything StreamReader buffers (2 x limit + one 256 KiB recv)


@dataclass(frozen=True)
class DataResult:
    content: bytes | None  # the message with transparency dots removed; None when refused
    error: str | None  # the refusal reply (message or a line too long)
    leftover: bytes  # what followed the terminator: pipelined commands


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> DataResult:
    """Read up to and including CRLF.CRLF; `line_limit` counts the CRLF and a transparency dot."""
    stream = bytearray(b"\r\n")  # a virtual line end before the first line, so an empty message ends at ".\r\n"
    overflow = False
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ConnectionResetError("connection closed during DATA")
        start = max(0, len(stream) - len(TERMINATOR) + 1)
        stream += chunk
        end = stream.find(TERMINATOR, start)
        if end >= 0:
            break
        if size_limit and len(stream) - 2 > size_limit:
            overflow = True
        if overflow:
            del stream[: -(len(TERMINATOR) - 1)]  # keep only what a terminator may straddle; drop the rest
    leftover = bytes(stream[end + len(TERMINATOR):])
    if overflow or (size_limit and end > size_limit):
        return DataResult(None, replies.MESSAGE_TOO_BIG, leftover)
    del stream[end + 2:]
    if end > line_limit - 2 and max(map(len, stream.split(b"\r\n"))) > line_limit - 2:
        return DataResult(None, replies.LINE_TOO_LONG, leftover)
    return DataResult(bytes(stream.replace(b"\r\n.", b"\r\n")[2:]), None, leftover)
