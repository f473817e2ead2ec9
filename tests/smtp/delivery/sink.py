"""Destination MX hosts for tests: aiosmtpd servers on 127.0.0.x that record what they accept.

Behaviour is scripted per sink: refuse some recipients, answer DATA with queued replies (e.g. one 451
before accepting), stall on DATA until released, or take a message and hold its 250 (for crash tests), or
offer STARTTLS. `CommandLog` sinks
also offer PIPELINING (aiosmtpd does not), log the commands they get and can hang up after each message.
`PostfixSink` is Postfix's own smtp-sink, which offers PIPELINING too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller

from harness.net import wait_port


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
        # Records the message, then holds its 250 until cleared: the destination took it, the sender never heard.
        self.holding_reply = threading.Event()
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
        if reply.startswith("2") and self.holding_reply.is_set():
            self.stalled.set()
            while self.holding_reply.is_set():
                await asyncio.sleep(0.05)
        return reply


class SlowHandler(SinkHandler):
    """Holds every DATA for `delay` seconds and remembers how many were in progress at once."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.active, self.peak = delay, 0, 0
        self.counter = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.counter:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            with self.counter:
                self.active -= 1
        return await super().handle_DATA(server, session, envelope)


class CommandLog(SinkHandler):
    """A sink handler that offers PIPELINING and logs the commands that reach it (a received message as "DATA";
    aiosmtpd answers commands out of sequence, such as an RCPT without a MAIL, itself)."""

    def __init__(self, *, pipelining: bool = True, hang_up_after_message: bool = False):
        super().__init__()
        self.pipelining = pipelining
        self.hang_up_after_message = hang_up_after_message  # as a server does that closes an idle connection
        self.commands: list[str] = []
        self.mail_replies: list[str] = []  # consumed one per MAIL FROM, like data_replies
        self.refused_rcpt_counts = False  # a refused RCPT still lets DATA get its 354 (RFC 2920 3.1's case)
        self.hang_ups = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.commands.append("EHLO")
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.commands.append("MAIL")
        reply = self.mail_replies.pop(0) if self.mail_replies else ""
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.commands.append("RCPT")
        reply = await super().handle_RCPT(server, session, envelope, address, rcpt_options)
        if self.refused_rcpt_counts and address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        self.commands.append("DATA")
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_up_after_message:
            asyncio.get_running_loop().call_soon(self._hang_up, server)  # after the reply has been written
        return reply

    async def handle_RSET(self, server, session, envelope):
        self.commands.append("RSET")
        return "250 2.0.0 OK"

    def _hang_up(self, server) -> None:
        server.transport.close()
        self.hang_ups += 1


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
        self.handler.holding_reply.clear()
        self.controller.stop()


class Refuser:
    """A host that answers every connection with one greeting (e.g. 421) and hangs up."""

    def __init__(self, host: str, port: int, greeting: bytes = b"421 4.3.2 too busy, try another MX\r\n"):
        self.greeting = greeting
        self.connections = 0
        self.sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
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


class PostfixSink:
    """Postfix's smtp-sink on host:port (it offers PIPELINING), appending every transaction to one dump file:
    generated X-Client-Addr ... Received headers, then the message with LF line ends, then an empty line."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        # smtp-sink drops root for nobody, who must be able to write the dump
        self.workdir = tempfile.mkdtemp(prefix="smtp-sink-")
        os.chmod(self.workdir, 0o777)
        self.dump_path = os.path.join(self.workdir, "dump")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PostfixSink":
        privileges = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen([SMTP_SINK, *privileges, "-D", self.dump_path, f"{self.host}:{self.port}", "16"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)
        return self

    def dump(self) -> bytes:
        try:
            with open(self.dump_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
