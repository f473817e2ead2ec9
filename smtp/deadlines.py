"""Per-command and per-DATA deadlines: a client trickling bytes cannot hold a session open.

The idle timeout restarts whenever bytes arrive during DATA, so on its own it lets a client that sends one
byte every few seconds keep a session (and a connection slot) forever. Here a command line must be complete
within `command_timeout` of its first byte, and a DATA section within `data_timeout` plus an allowance for its
size (so a big message that keeps streaming at a sane rate is never cut off). The work per received packet is
one `rfind` and, at most, one timer; nothing looks at the bytes one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

DATA_MIN_RATE = 10 * 1024  # bytes/s: each such amount received buys a DATA section one more second


class SessionDeadlines:
    """Arms and cancels the two deadlines; `on_expiry(reply_name)` is called once when one passes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, command_timeout: float, data_timeout: float,
                 on_expiry: Callable[[str], None]):
        self.loop = loop
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.on_expiry = on_expiry
        self._line_timer: asyncio.TimerHandle | None = None
        self._data_timer: asyncio.TimerHandle | None = None
        self._data_started: float | None = None  # loop time of the 354, while a DATA section is being read
        self._data_bytes = 0

    @property
    def in_data(self) -> bool:
        return self._data_started is not None

    def received(self, data: bytes) -> None:
        """Called for every packet: a line left incomplete starts (or keeps) the command deadline."""
        if self._data_started is not None:
            self._data_bytes += len(data)
            return
        newline = data.rfind(b"\n")
        if newline == len(data) - 1:  # every line in the packet is complete
            self._cancel_line()
        elif newline >= 0 or self._line_timer is None:  # a new partial line starts with this packet
            self._cancel_line()
            self._line_timer = self.loop.call_later(self.command_timeout, self._expire, "command")

    def data_started(self) -> None:
        self._cancel_line()
        self._data_started = self.loop.time()
        self._data_bytes = 0
        self._data_timer = self.loop.call_later(self.data_timeout, self._check_data)

    def data_ended(self) -> None:
        self._data_started = None
        if self._data_timer is not None:
            self._data_timer.cancel()
            self._data_timer = None

    def cancel(self) -> None:
        self._cancel_line()
        self.data_ended()

    def _check_data(self) -> None:
        if self._data_started is None:
            return
        allowed = self.data_timeout + self._data_bytes / DATA_MIN_RATE
        left = self._data_started + allowed - self.loop.time()
        if left > 0:
            self._data_timer = self.loop.call_later(left, self._check_data)
        else:
            self._data_timer = None
            self._expire("data")

    def _cancel_line(self) -> None:
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None

    def _expire(self, which: str) -> None:
        self._line_timer = None
        self.cancel()
        self.on_expiry(which)
