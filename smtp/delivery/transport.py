"""Direct SMTP client: one connection per destination domain, every transaction for it over that connection.

`send()` is a generator that yields each transaction's replies as soon as its DATA is answered, so the
caller can commit a delivered destination before the next transaction starts.

A connection whose transactions all went through is parked, one per MX address, and the next `send()`
to that address (the next job of this worker, usually) reuses it, as Postfix's connection cache does: no
TCP handshake, greeting, EHLO, STARTTLS and QUIT per message. One parked under REUSE_UNCHECKED seconds
ago is used as it is; should its first command find it closed (or answered 421) before the MAIL FROM is
accepted, nothing of the transaction was taken, so it goes again over a new connection to the same
address. One parked longer must answer an RSET with 250 first. A parked connection is closed instead of
reused once idle for `reuse_idle` seconds, older than REUSE_MAX_AGE or after REUSE_MAX_TRANSACTIONS;
`reuse_idle=0` turns reuse off.

Each transaction itself is smtp/delivery/exchange.py's (PIPELINING when the server offers it).

The socket goes to the MX address as an IP literal, once the private-destination guard has allowed it: no
second DNS lookup between the check and the connection (DNS rebinding). The MX host name is kept for SNI,
the route and the log.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field

from mailferry.destinations import DestinationGuard

from .exchange import Exchange, NothingAccepted, Transaction, smtp_reply
from .mx import MxHost
from .outcome import Reply

NO_HOSTS = Reply(None, "4.4.4 no MX host could be tried")
REUSE_IDLE = 5.0  # seconds a parked connection may wait for its next transaction
REUSE_MAX_AGE = 300.0  # Postfix's smtp_connection_reuse_time_limit
REUSE_MAX_TRANSACTIONS = 100
REUSE_UNCHECKED = 2.0  # seconds parked within which a connection is reused without an RSET check
Connector = Callable[[str, int, float], socket.socket]  # (IP literal, port, timeout) -> a connected socket


def connect_to_address(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to an IP literal; a host name raises socket.gaierror instead of being resolved."""
    socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return socket.create_connection((address, port), timeout)


class _Client(smtplib.SMTP):
    """smtplib's client with its socket opened by the transport's connector."""

    def __init__(self, connector: Connector, **kwargs):
        self._connector = connector
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        return self._connector(host, port, timeout)


@dataclass
class TransactionResult:
    transaction: Transaction
    replies: dict[str, Reply]
    mx_host: str = ""
    tls: bool = False
    final: bool = False  # nothing more will be sent on this connection after this transaction
    relay: str = ""  # the relay's name when a relay took it (RelayTransport)


@dataclass
class _Session:
    client: smtplib.SMTP
    host: MxHost
    tls: bool
    features: dict = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    transactions: int = 0
    unchecked: bool = False  # reused without an RSET check and not used since


class SessionError(Exception):
    def __init__(self, reply: Reply):
        super().__init__(str(reply))
        self.reply = reply


class DirectTransport:
    def __init__(self, *, hostname: str, port: int, timeout: float, require_tls: bool,
                 data_timeout: float | None = None, reuse_idle: float = REUSE_IDLE,
                 guard: DestinationGuard | None = None, connect: Connector = connect_to_address):
        self.hostname = hostname
        self.guard = guard or DestinationGuard()
        self.connect = connect
        self.port = port
        self.timeout = timeout
        self.reuse_idle = reuse_idle
        self._parked: dict[tuple[str, str], tuple[_Session, float]] = {}  # (mx name, address) -> (session, since)
        self._lock = threading.Lock()  # the sweeper thread closes what stays parked too long
        self._sweeper: threading.Timer | None = None
        # RFC 5321 4.5.3.2 gives the reply to the final dot 10 minutes: a server still scanning the message
        # must not be taken for dead, or the retry would deliver it twice.
        self.exchange = Exchange(timeout, max(timeout, data_timeout or timeout))
        self.require_tls = require_tls
        # Opportunistic STARTTLS (RFC 3207): MX certificates are not checked, as every MTA does without DANE/MTA-STS.
        self.tls_context = ssl.create_default_context()
        self.tls_context.check_hostname = False
        self.tls_context.verify_mode = ssl.CERT_NONE

    def send(self, hosts: list[MxHost], transactions: Iterable[Transaction]) -> Iterator[TransactionResult]:
        pending = list(transactions)
        last, last_host = NO_HOSTS, ""
        for host in hosts:
            for address in host.addresses:
                if not pending:
                    return
                try:
                    yield from self._deliver(host, address, pending)
                except SessionError as exc:
                    last, last_host = exc.reply, host.name
        for i, tx in enumerate(pending):
            yield TransactionResult(tx, {r: last for r in tx.recipients}, last_host, False, i == len(pending) - 1)

    def has_parked(self, hosts: list[MxHost]) -> bool:
        """Whether the next send() to these hosts will probably reuse a parked connection."""
        with self._lock:
            return any((host.name, address) in self._parked for host in hosts for address in host.addresses)

    def close(self) -> None:
        """QUIT every parked connection."""
        with self._lock:
            sessions = [session for session, _ in self._parked.values()]
            self._parked.clear()
        for session in sessions:
            self._close(session)

    # ---- connection reuse ----
    def _park(self, session: _Session, address: str) -> None:
        now = time.monotonic()
        if (self.reuse_idle <= 0 or session.transactions >= REUSE_MAX_TRANSACTIONS
                or now - session.opened_at >= REUSE_MAX_AGE):
            self._close(session)
            return
        with self._lock:
            previous = self._parked.pop((session.host.name, address), None)
            self._parked[(session.host.name, address)] = (session, now)
            if self._sweeper is None:
                self._sweeper = threading.Timer(self.reuse_idle, self._sweep)
                self._sweeper.daemon = True
                self._sweeper.start()
        if previous is not None:
            self._close(previous[0])

    def _sweep(self) -> None:
        """QUIT what has been parked longer than reuse_idle; run again while anything stays parked."""
        now = time.monotonic()
        with self._lock:
            stale = [key for key, (_, since) in self._parked.items() if now - since >= self.reuse_idle]
            sessions = [self._parked.pop(key)[0] for key in stale]
            self._sweeper = None
            if self._parked:
                self._sweeper = threading.Timer(self.reuse_idle, self._sweep)
                self._sweeper.daemon = True
                self._sweeper.start()
        for session in sessions:
            self._close(session)

    def _reuse(self, host: MxHost, address: str) -> _Session | None:
        """A parked connection to this address: one parked just now as it is, an older one if it still answers
        RSET with 250; or None."""
        with self._lock:
            parked = self._parked.pop((host.name, address), None)
        if parked is None:
            return None
        session, since = parked
        idle = time.monotonic() - since
        if idle >= self.reuse_idle:
            self._close(session)
            return None
        session.unchecked = idle < REUSE_UNCHECKED
        if not session.unchecked and not self._answers_rset(session):
            return None
        session.host = host
        return session

    def _answers_rset(self, session: _Session) -> bool:
        try:
            code, _ = session.client.rset()
        except (OSError, smtplib.SMTPException):
            self._abort(session.client)
            return False
        if code != 250:
            self._close(session)
            return False
        return True

    def _open(self, host: MxHost, address: str) -> _Session:
        where = f"{host.name}[{address}]:{self.port}"
        verdict = self.guard.check(address)
        if not verdict.allowed:
            raise SessionError(Reply(None, f"4.4.4 {where}: not connecting to a {verdict.reason} address"))
        client = _Client(self.connect, local_hostname=self.hostname, timeout=self.timeout)
        try:
            code, message = client.connect(address, self.port)
            if code != 220:
                raise SessionError(smtp_reply(code, message))
            tls = self._hello(client, host)
            return _Session(client, host, tls)
        except SessionError:
            self._abort(client)
            raise
        except smtplib.SMTPResponseException as exc:
            self._abort(client)
            raise SessionError(smtp_reply(exc.smtp_code, exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            self._abort(client)
            raise SessionError(Reply(None, f"{where}: {exc or type(exc).__name__}")) from None

    def _hello(self, client: smtplib.SMTP, host: MxHost) -> bool:
        code, message = client.ehlo()
        if code != 250:
            code, message = client.helo()
            if code != 250:
                raise SessionError(smtp_reply(code, message))
        if not client.has_extn("starttls"):
            if self.require_tls:
                raise SessionError(Reply(None, f"4.7.10 {host.name} does not offer STARTTLS and TLS is required"))
            return False
        client._host = host.name  # smtplib sends SNI for the name given to SMTP(), which we bypass to pick the IP
        client.starttls(context=self.tls_context)
        client.ehlo()
        return True

    def _deliver(self, host: MxHost, address: str,
                 pending: list[Transaction]) -> Generator[TransactionResult, None, None]:
        """Send what is pending over a parked connection to this address, or a new one (SessionError if
        none can be opened)."""
        session = self._reuse(host, address)
        if session is not None:
            try:
                yield from self._use(session, address, pending)
                return
            except NothingAccepted:  # closed while parked: nothing was taken, so it goes again below
                session = None
        yield from self._use(self._open(host, address), address, pending)

    def _use(self, session: _Session, address: str,
             pending: list[Transaction]) -> Generator[TransactionResult, None, None]:
        clean = False
        try:
            clean = yield from self._run(session, pending)
        finally:
            if clean:
                self._park(session, address)
            else:
                self._close(session)

    def _run(self, session: _Session, pending: list[Transaction]) -> Generator[TransactionResult, None, bool]:
        """Send the pending transactions; returns True when the connection is still good for another one.
        Raises NothingAccepted, leaving the transaction pending, when an unchecked reused connection is dead."""
        clean = True
        while pending:
            tx = pending[0]
            session.transactions += 1
            unchecked, session.unchecked = session.unchecked, False
            try:
                replies = self.exchange.transaction(session.client, tx)
            except NothingAccepted as exc:
                if unchecked:
                    raise
                lost = exc.reply or self._lost(session, exc)
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                lost = self._lost(session, exc)
            else:
                pending.pop(0)
                clean = clean and not any(r.code == 421 for r in replies.values())  # the server is closing
                yield TransactionResult(tx, replies, session.host.name, session.tls, final=not pending)
                continue
            pending.pop(0)
            yield TransactionResult(tx, {r: lost for r in tx.recipients}, session.host.name, session.tls)
            return False  # the rest try the next host
        return clean

    @staticmethod
    def _lost(session: _Session, exc: Exception) -> Reply:
        return Reply(None, f"4.4.2 connection to {session.host.name} lost: {exc or type(exc).__name__}")

    @staticmethod
    def _close(session: _Session) -> None:
        try:
            session.client.quit()
        except (OSError, smtplib.SMTPException):
            session.client.close()

    @staticmethod
    def _abort(client: smtplib.SMTP) -> None:
        try:
            client.close()
        except OSError:
            pass

