"""aiosmtpd's SMTP protocol with the fixes this server needs (measured traps of aiosmtpd 1.4.6).

- Replies get RFC 3463 enhanced status codes (aiosmtpd's own replies have none) and our wording for
  oversize lines (500 5.5.6) and messages (552 5.3.4).
- The idle timer restarts on any bytes received, so a long DATA transfer is not cut off after
  SMTP_IDLE_TIMEOUT of total time; an idle session is told 421 4.4.2 before it is closed.
- DATA is read in large chunks (see data_reader), not one `readuntil()` per line.
- Plain `<local@domain>` addresses are parsed with one regex; anything else goes to aiosmtpd's RFC 5322
  parser, which costs about as much per MAIL/RCPT as the rest of the command.
- `command_size_limits` is a class-level dict in aiosmtpd that every new connection clears and every EHLO
  grows; here it is per connection.
"""

from __future__ import annotations

import asyncio
import collections
import re
from typing import AnyStr

from aiosmtpd.smtp import MISSING, SMTP, Envelope

from . import replies
from .data_reader import read_data
from .peer_limits import PeerLimits
from .routes import Route

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ANGLE_ADDRESS = re.compile(rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class InboundEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


class InboundSMTP(SMTP):
    def __init__(self, handler, peer_limits: PeerLimits | None = None, **kwargs):
        self.peer_limits = peer_limits
        self._counted_peer: str | None = None  # the address this session holds a slot for
        self._refused_peer = False
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._greeting_pending = True  # the greeting is the first push: no enhanced code on it
        self._in_helo = False
        self.busy = False  # set while a message is being committed; shutdown waits for it
        self.refused_recipients = 0  # a session that guesses addresses is closed after HARD_ERROR_LIMIT
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # connection_made runs again after STARTTLS
        super().connection_made(transport)
        if first and self.peer_limits is not None:
            peer = transport.get_extra_info("peername")
            address = peer[0] if peer else ""
            if self.peer_limits.acquire(address):
                self._counted_peer = address
            else:
                self._refused_peer = True

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted_peer is not None and self.peer_limits is not None:
            self.peer_limits.release(self._counted_peer)
            self._counted_peer = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refused_peer:  # instead of the greeting
            await self.push(replies.TOO_MANY_CONNECTIONS.format(host=self.hostname))
            self.transport.close()
            return
        await super()._handle_client()

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

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            result = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if result.leftover:
            # Nothing was awaited since the read that drained the buffer: these bytes go back in order.
            self._reader.feed_data(result.leftover)
        if result.error:
            self._set_post_data_state()
            await self.push(result.error)
            return
        self.envelope.content = self.envelope.original_content = result.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_ANGLE_ADDRESS.match(arg) if arg else None
        rest = arg[match.end():].lstrip(" \t") if match else ""
        if match is None or rest.startswith("("):  # a comment after the address: the full parser's job
            return super()._getaddr(arg)
        return match.group(1), rest

    def close_after_reply(self) -> None:
        """Close once the reply being sent has left (transport.close flushes what is buffered)."""
        if self.transport is not None:
            self.loop.call_soon(self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.IDLE_TIMEOUT.format(host=self.hostname).encode("ascii") + b"\r\n")
        super()._timeout_cb()
