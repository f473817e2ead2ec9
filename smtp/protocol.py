"""aiosmtpd's SMTP protocol with the fixes this server needs (measured traps of aiosmtpd 1.4.6).

- Replies get RFC 3463 enhanced status codes (aiosmtpd's own replies have none) and our wording for
  oversize lines (500 5.5.6) and messages (552 5.3.4).
- The idle timer restarts on any bytes received, so a long DATA transfer is not cut off after
  SMTP_IDLE_TIMEOUT of total time; an idle session is told 421 4.4.2 before it is closed.
- `command_size_limits` is a class-level dict in aiosmtpd that every new connection clears and every EHLO
  grows; here it is per connection.
"""

from __future__ import annotations

import collections
from typing import AnyStr

from aiosmtpd.smtp import SMTP, Envelope

from . import replies
from .routes import Route


class InboundEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


class InboundSMTP(SMTP):
    def __init__(self, handler, **kwargs):
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._greeting_pending = True  # the greeting is the first push: no enhanced code on it
        self._in_helo = False
        self.busy = False  # set while a message is being committed; shutdown waits for it
        super().__init__(handler, **kwargs)

    def _create_envelope(self) -> InboundEnvelope:
        return InboundEnvelope()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            if self._greeting_pending:
                self._greeting_pending = False
            elif not self._in_helo:
                status = replies.with_enhanced_code(status)
        await super().push(status)

    async def smtp_HELO(self, hostname: str) -> None:
        await self._plain(super().smtp_HELO(hostname))

    async def smtp_EHLO(self, hostname: str) -> None:
        self.command_size_limits.clear()
        await self._plain(super().smtp_EHLO(hostname))

    async def _plain(self, coroutine) -> None:
        """HELO/EHLO replies carry no enhanced code (RFC 2034); every push inside is sent as is."""
        self._in_helo = True
        try:
            await coroutine
        finally:
            self._in_helo = False

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.IDLE_TIMEOUT.format(host=self.hostname).encode("ascii") + b"\r\n")
        super()._timeout_cb()
