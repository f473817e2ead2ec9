"""Destination MX hosts for tests: aiosmtpd servers on 127.0.0.x that record what they accept.

Behaviour is scripted per sink: refuse some recipients, answer DATA with queued replies (e.g. one 451
before accepting), stall on DATA until released (for crash tests), or offer STARTTLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    helo: str
    session_id: int  # the same for transactions over one connection


class SinkHandler:
    def __init__(self):
        self.messages: list[Received] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: list[str] = []  # consumed one per DATA; a 2xx in here still records the message
        self.stalling = threading.Event()
        self.stalled = threading.Event()  # set once a DATA is being held
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stalling.is_set():
            self.stalled.set()
            while self.stalling.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 released after a stall"
        with self.lock:
            reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 OK queued"
            if reply.startswith("2"):
                self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content,
                                              session.ssl is not None, session.host_name or "", id(session)))
        return reply


class Sink:
    def __init__(self, host: str, port: int, tls_context: ssl.SSLContext | None = None, smtputf8: bool = False,
                 handler: SinkHandler | None = None):
        self.host = host
        self.port = port
        self.handler = handler or SinkHandler()
        kwargs = {"tls_context": tls_context} if tls_context else {}
        kwargs["enable_SMTPUTF8"] = smtputf8
        self.controller = Controller(self.handler, hostname=host, port=port, server_hostname=f"sink-{host}",
                                     ready_timeout=10, **kwargs)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> "Sink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.handler.stalling.clear()
        self.controller.stop()


class Refuser:
    """A host that answers every connection with one greeting (e.g. 421) and hangs up."""

    def __init__(self, host: str, port: int, greeting: bytes = b"421 4.3.2 too busy, try another MX\r\n"):
        self.greeting = greeting
        self.connections = 0
        self.sock = socket.create_server((host, port))
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "Refuser":
        self.thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(self.greeting)

    def stop(self) -> None:
        self.sock.close()
