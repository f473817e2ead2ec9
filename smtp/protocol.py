"""aiosmtpd's SMTP protocol with the fixes this server needs (measured traps of aiosmtpd 1.4.6).

- Replies get RFC 3463 enhanced status codes (aiosmtpd's own replies have none) and our wording for
  oversize lines (500 5.5.6) and messages (552 5.3.4).
- The idle timer restarts on any bytes received during DATA, so a long DATA transfer is not cut off after
  SMTP_IDLE_TIMEOUT of total time; between commands only a valid command restarts it (aiosmtpd's rule), so
  empty lines every few seconds do not keep a session. An idle session is told 421 4.4.2 before it is closed.
- A command line must be complete within SMTP_COMMAND_TIMEOUT of its first byte, a DATA section within
  SMTP_DATA_TIMEOUT plus a size allowance (see deadlines): a trickling client is told 421 4.4.2 and dropped.
- Command arguments with NUL or other control characters are refused (501 5.5.2) before aiosmtpd parses
  them, and RCPT source routes (`<@a:user@b>`, which aiosmtpd's parser silently drops) are refused as relaying.
- DATA is read in large chunks (see data_reader), not one `readuntil()` per line.
- Plain `<local@domain>` addresses are parsed with one regex; anything else goes to aiosmtpd's RFC 5322
  parser, which costs about as much per MAIL/RCPT as the rest of the command.
- `command_size_limits` is a class-level dict in aiosmtpd that every new connection clears and every EHLO
  grows; here it is per connection.
- aiosmtpd's `SMTP.__init__` runs `inspect.getmembers()` on the session and on the handler for every
  connection, only to find the `auth_*` methods; getmembers reads every attribute (properties included)
  and was a tenth of the server's CPU with one message per connection. `_CachedInspect` answers the same
  list from the names found once per class (see `fast_getmembers`); the `dir()` it runs twice per
  connection to find the `handle_*` hooks and `smtp_*` commands is likewise answered per class
  (`fast_dir`).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import re
from typing import Any, AnyStr

import aiosmtpd.smtp
from aiosmtpd.smtp import MISSING, SMTP, Envelope

from mailferry.logs import get_logger, log
from mailferry.metrics import smtp_metrics

from . import replies
from .data_reader import read_data
from .deadlines import SessionDeadlines
from .handler import peer_host
from .peer_limits import PeerLimits
from .reply_metrics import count_reply
from .routes import Route

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ANGLE_ADDRESS = re.compile(rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but HT, and DEL
_SOURCE_ROUTE = re.compile(r"\s*TO:\s*<\s*@", re.IGNORECASE)
logger = get_logger("smtp.inbound")


@functools.lru_cache(maxsize=64)
def _auth_names(cls: type) -> tuple[str, ...]:
    return tuple(name for name in dir(cls) if name.startswith("auth_"))


def fast_getmembers(obj: object) -> list[tuple[str, Any]]:
    """What aiosmtpd uses `inspect.getmembers(obj)` for: the `auth_*` members, bound to `obj`. Instance
    attributes named `auth_*` are included too; every other member is left out (aiosmtpd skips them)."""
    names = set(_auth_names(type(obj)))
    names.update(n for n in getattr(obj, "__dict__", ()) if n.startswith("auth_"))
    return [(name, getattr(obj, name)) for name in sorted(names)]


@functools.lru_cache(maxsize=64)
def _class_dir(cls: type) -> tuple[str, ...]:
    return tuple(dir(cls))


def fast_dir(obj: object) -> list[str]:
    """dir(obj) for an instance: its class's names (found once per class) and its own attributes."""
    if isinstance(obj, type) or not hasattr(obj, "__dict__"):
        return dir(obj)
    return sorted(set(_class_dir(type(obj))).union(obj.__dict__))


@functools.lru_cache(maxsize=64)
def _bound_signature(function: Any) -> inspect.Signature:
    """The signature of `function` bound as a method: its first parameter dropped."""
    signature = inspect.signature(function)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


class _CachedInspect:
    """Stands in for the `inspect` module inside aiosmtpd.smtp only."""

    getmembers = staticmethod(fast_getmembers)

    @staticmethod
    def signature(obj: Any) -> inspect.Signature:
        function = getattr(obj, "__func__", None)
        return inspect.signature(obj) if function is None else _bound_signature(function)

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


def install_aiosmtpd_speedups() -> None:
    """Point aiosmtpd.smtp's module-level `inspect` and `dir` at the cached versions above (idempotent; the
    server calls it at start, not at import)."""
    aiosmtpd.smtp.inspect = _CachedInspect()
    aiosmtpd.smtp.dir = fast_dir  # the module's only dir() calls are the two in SMTP.__init__


def refuse_control_characters(command):
    """An smtp_* method that answers 501 5.5.2 instead when its argument holds a control character: a NUL in
    MAIL FROM was stored and sent on inside the SRS envelope."""

    @functools.wraps(command)
    async def checked(self, arg: str | None) -> None:
        if arg and _CONTROL.search(arg):
            await self.push(replies.CONTROL_CHARACTER)
            return
        await command(self, arg)

    return checked


class InboundEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


class InboundSMTP(SMTP):
    def __init__(self, handler, peer_limits: PeerLimits | None = None, command_timeout: float = 60.0,
                 data_timeout: float = 300.0, **kwargs):
        self.peer_limits = peer_limits
        self._deadline_args = (command_timeout, data_timeout)
        self.deadlines: SessionDeadlines | None = None
        self._counted_peer: str | None = None  # the address this session holds a slot for
        self._refused_peer = False
        self._counted_open = False  # counted in mailferry_smtp_connections_open
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._greeting_pending = True  # the greeting is the first push: no enhanced code on it
        self._in_helo = False
        self.busy = False  # set while a message is being committed; shutdown waits for it
        self.refused_recipients = 0  # a session that guesses addresses is closed after HARD_ERROR_LIMIT
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # connection_made runs again after STARTTLS
        super().connection_made(transport)
        if first:
            metrics = smtp_metrics()
            metrics.connections.inc()
            metrics.connections_open.inc()
            self._counted_open = True
            self.deadlines = SessionDeadlines(self.loop, *self._deadline_args, self._deadline_passed)
        if first and self.peer_limits is not None:
            peer = transport.get_extra_info("peername")
            address = peer[0] if peer else ""
            if self.peer_limits.acquire(address):
                self._counted_peer = address
            else:
                self._refused_peer = True

    def connection_lost(self, error: Exception | None) -> None:
        if self.deadlines is not None:
            self.deadlines.cancel()
        if self._counted_open:  # once per session, whatever STARTTLS did to the transport
            self._counted_open = False
            smtp_metrics().connections_open.dec()
        if self._counted_peer is not None and self.peer_limits is not None:
            self.peer_limits.release(self._counted_peer)
            self._counted_peer = None
        super().connection_lost(error)
        if self._handler_coroutine.done():  # else _session_over runs when it is
            self._drop_cycles()

    def _session_over(self, task: asyncio.Task) -> None:
        if self.transport is None:  # connection_lost has run (it cancels the task first)
            self._drop_cycles()

    def _drop_cycles(self) -> None:
        """Unlink what ties a finished session to itself, so reference counting frees it at once instead of
        leaving ~75 objects per connection to the cyclic GC, whose full passes stalled every session of the
        process for 100-160 ms under load: the bound methods aiosmtpd keeps in per-session dicts and as
        the stream's connected callback, the timeout handle's callback, and the handler task whose CancelledError traceback holds our frames."""
        self._smtp_methods = self._handle_hooks = self._auth_methods = {}
        self._timeout_handle = self._handler_coroutine = self._client_connected_cb = None
        self.session = self.envelope = self._reader = self._writer = self.deadlines = None

    async def _handle_client(self) -> None:
        asyncio.current_task().add_done_callback(self._session_over)
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
            count_reply(status)
        await super().push(status)

    @refuse_control_characters
    async def smtp_HELO(self, hostname: str) -> None:
        await self._plain(super().smtp_HELO(hostname))

    @refuse_control_characters
    async def smtp_EHLO(self, hostname: str) -> None:
        self.command_size_limits.clear()
        await self._plain(super().smtp_EHLO(hostname))

    smtp_MAIL = refuse_control_characters(SMTP.smtp_MAIL)
    smtp_VRFY = refuse_control_characters(SMTP.smtp_VRFY)
    smtp_EXPN = refuse_control_characters(SMTP.smtp_EXPN)
    smtp_NOOP = refuse_control_characters(SMTP.smtp_NOOP)

    @refuse_control_characters
    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg and _SOURCE_ROUTE.match(arg):
            await self.push(replies.SOURCE_ROUTE)
            return
        await super().smtp_RCPT(arg)

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
        self.deadlines.data_started()
        try:
            result = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            self._writer.close()
            raise
        finally:
            if self.deadlines is not None:
                self.deadlines.data_ended()
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
        if self.transport is not None and self.deadlines is not None:
            self.deadlines.received(data)
            if self.deadlines.in_data:
                self._reset_timeout()
        super().data_received(data)

    def _deadline_passed(self, which: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reply = replies.DATA_TIMEOUT if which == "data" else replies.COMMAND_TIMEOUT
        log(logger, logging.INFO, "closing: deadline passed", peer=peer_host(self.session), deadline=which)
        self.transport.write(reply.format(host=self.hostname).encode("ascii") + b"\r\n")
        self.transport.close()

    def _timeout_cb(self) -> None:
        if self._tls_protocol is not None and self.session.ssl is None:
            # Timed out in the STARTTLS handshake. Closing the TLS transport would never call connection_lost
            # (the TLS layer had not handed the connection over yet) and would wake aiosmtpd as if the
            # handshake had succeeded: the session then waited forever on a dead reader, holding its
            # per-address slot (SMTP_MAX_CONNECTIONS_PER_IP) until the process restarted.
            self.connection_lost(None)  # closes the plain transport too
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.IDLE_TIMEOUT.format(host=self.hostname).encode("ascii") + b"\r\n")
        super()._timeout_cb()
