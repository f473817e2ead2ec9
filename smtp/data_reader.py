"""Reading the DATA section chunk by chunk instead of aiosmtpd's one `readuntil()` per line.

aiosmtpd 1.4.6 spends most of a message's event-loop time in its per-line DATA loop. Here each
received chunk's complete lines are checked (size, line length, bare CR/LF) and dot-unstuffed with
a few C-level calls as they arrive, so even a 25 MB message never holds the event loop for long.
Bytes a pipelining client sent after the terminator are returned so the command loop reads them next.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import replies
from .content import has_bare_line_ending

TERMINATOR = b"\r\n.\r\n"
READ_SIZE = 1 << 20  # larger than anything StreamReader buffers (2 x limit + one 256 KiB recv)


@dataclass(frozen=True)
class DataResult:
    content: bytes | None  # the message with transparency dots removed; None when refused
    error: str | None  # the refusal reply: too big, a line too long, a bare CR or LF
    leftover: bytes  # what followed the terminator: pipelined commands


class _Section:
    """The checks and the unstuffed content, fed blocks of whole CRLF-terminated lines."""

    def __init__(self, size_limit: int | None, line_limit: int):
        self.size_limit = size_limit
        self.max_text = line_limit - 2  # the longest line, CRLF excluded (a transparency dot included)
        self.blocks: list[bytes] = []
        self.size = 0
        self.too_big = self.too_long = self.bare = False

    def add(self, lines: bytes) -> None:
        self.size += len(lines)
        if self.size_limit and self.size > self.size_limit and not self.too_big:
            self.too_big = True
            self.blocks.clear()
        if self.too_big or self.too_long or self.bare:
            return
        if len(lines) > self.max_text and max(map(len, lines.split(b"\r\n"))) > self.max_text:
            self.too_long = True
        elif has_bare_line_ending(lines):
            self.bare = True
        else:
            if lines[:1] == b".":  # every block starts at a line start
                lines = lines[1:]
            self.blocks.append(lines.replace(b"\r\n.", b"\r\n"))

    def overlong_line(self, dropped: int) -> None:
        self.size += dropped
        self.too_long = True
        self.blocks.clear()

    def result(self, leftover: bytes) -> DataResult:
        if self.too_big or (self.size_limit and self.size > self.size_limit):
            return DataResult(None, replies.MESSAGE_TOO_BIG, leftover)
        if self.too_long:
            return DataResult(None, replies.LINE_TOO_LONG, leftover)
        if self.bare:
            return DataResult(None, replies.BARE_LINE_ENDING, leftover)
        return DataResult(b"".join(self.blocks), None, leftover)


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> DataResult:
    """Read up to and including the CRLF.CRLF terminator; `line_limit` counts the CRLF."""
    section = _Section(size_limit, line_limit)
    carry = b""  # the incomplete last line of what has been read
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ConnectionResetError("connection closed during DATA")
        buffer = carry + chunk
        cut = buffer.rfind(b"\r\n")
        if cut < 0:
            carry = buffer
            if len(carry) > section.max_text + 1:
                section.overlong_line(len(carry) - 1)
                carry = carry[-1:]  # a CR here may pair with an LF in the next chunk
            continue
        lines, carry = buffer[: cut + 2], buffer[cut + 2:]
        if lines.startswith(b".\r\n"):  # `lines` starts a line: the terminator right after the last block
            return section.result(lines[3:] + carry)
        end = lines.find(TERMINATOR)
        if end < 0:
            section.add(lines)
            continue
        # The terminator's own CRLF ends the last line, an empty one when it is found at 0 (a message ending
        # in a blank line whose CRLF.CRLF came in a packet of its own: that CRLF was fed back as a command).
        section.add(lines[:end + 2])
        return section.result(lines[end + 5:] + carry)
