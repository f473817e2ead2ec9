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

When the server offers PIPELINING (RFC 2920), MAIL FROM, every RCPT TO and DATA go out in one write and
the body with its final dot in another, so a transaction costs two round trips instead of 3 + recipients.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field

from .mx import MxHost
from .outcome import Reply

NO_HOSTS = Reply(None, "4.4.4 no MX host could be tried")
REUSE_IDLE = 5.0  # seconds a parked connection may wait for its next transaction
REUSE_MAX_AGE = 300.0  # Postfix's smtp_connection_reuse_time_limit
REUSE_MAX_TRANSACTIONS = 100
REUSE_UNCHECKED = 2.0  # seconds parked within which a connection is reused without an RSET check


@dataclass
class Transaction:
    envelope_from: str
    recipients: list[str]
    data: bytes
    tag: object = None  # the caller's bookkeeping, handed back with the result


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


class NothingAccepted(smtplib.SMTPServerDisconnected):
    """The connection closed, failed or answered 421 before the MAIL FROM was accepted: nothing of the
    transaction was taken, so it can go again over another connection without being delivered twice."""

    def __init__(self, why: str, reply: Reply | None = None):
        super().__init__(why)
        self.reply = reply  # the 421, when the server said it was closing


def smtp_reply(code: int, message: bytes | str) -> Reply:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return Reply(code, " ".join(text.split()))


def wire_address(address: str) -> str:
    """The domain part as an IDNA A-label, so only a non-ASCII local part needs SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _has_8bit(data: bytes) -> bool:
    return not data.isascii()


def dot_stuffed(data: bytes) -> bytes:
    """The DATA body as sent (RFC 5321 4.5.2): a dot doubled at the start of every line, then CRLF.CRLF."""
    body = data.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def command_lines(*commands: str) -> str:
    """The commands with their CRLFs; like smtplib's putcmd, no CR or LF inside a command."""
    for command in commands:
        if "\r" in command or "\n" in command:
            raise ValueError(f"command contains prohibited newline characters: {command!r}")
    return "\r\n".join(commands) + "\r\n"


class DirectTransport:
    def __init__(self, *, hostname: str, port: int, timeout: float, require_tls: bool,
                 data_timeout: float | None = None, reuse_idle: float = REUSE_IDLE):
        self.hostname = hostname
        self.port = port
        self.timeout = timeout
        self.reuse_idle = reuse_idle
        self._parked: dict[tuple[str, str], tuple[_Session, float]] = {}  # (mx name, address) -> (session, since)
        self._lock = threading.Lock()  # the sweeper thread closes what stays parked too long
        self._sweeper: threading.Timer | None = None
        # RFC 5321 4.5.3.2 gives the reply to the final dot 10 minutes: a server still scanning the message
        # must not be taken for dead, or the retry would deliver it twice.
        self.data_timeout = max(timeout, data_timeout or timeout)
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
        client = smtplib.SMTP(local_hostname=self.hostname, timeout=self.timeout)
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
            except NothingAccepted:
                pass  # it was closed while parked; the transaction goes again below
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
                replies = self.transaction(session.client, tx)
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

    # ---- one transaction ----
    def transaction(self, client: smtplib.SMTP, tx: Transaction) -> dict[str, Reply]:
        """MAIL, RCPT per recipient, DATA on an open session (also used by RelayTransport); per-recipient replies.
        Raises NothingAccepted when the connection is found closed (or closing) before the MAIL FROM is accepted,
        OSError or SMTPServerDisconnected when it is lost later."""
        sender, recipients = wire_address(tx.envelope_from), [wire_address(r) for r in tx.recipients]
        options = self._mail_options(client, tx.data)
        if not (sender.isascii() and all(r.isascii() for r in recipients)):
            if not client.has_extn("smtputf8"):
                refused = Reply(553, "5.6.7 destination does not support SMTPUTF8 for a non-ASCII address")
                return {r: refused for r in tx.recipients}
            options += " SMTPUTF8"
            client.command_encoding = "utf-8"
        mail = f"MAIL FROM:<{sender}>{options}"
        rcpts = [f"RCPT TO:<{r}>" for r in recipients]
        if client.has_extn("pipelining"):
            return self._pipelined(client, tx, mail, rcpts)
        return self._lockstep(client, tx, mail, rcpts)

    @staticmethod
    def _mail_options(client: smtplib.SMTP, data: bytes) -> str:
        options = ""
        if client.has_extn("size"):
            options += f" SIZE={len(data)}"
        if _has_8bit(data) and client.has_extn("8bitmime"):
            options += " BODY=8BITMIME"
        return options

    def _lockstep(self, client: smtplib.SMTP, tx: Transaction, mail: str, rcpts: list[str]) -> dict[str, Reply]:
        code, message = self._mail_reply(client, command_lines(mail))
        if code != 250:
            self._reset(client)
            return {r: smtp_reply(code, message) for r in tx.recipients}
        replies = {r: smtp_reply(*client.docmd(rcpt)) for r, rcpt in zip(tx.recipients, rcpts, strict=True)}
        accepted = [r for r in tx.recipients if replies[r].code in (250, 251)]
        if not accepted:
            self._reset(client)
            return replies
        return self._conclude(client, tx, replies, accepted, *client.docmd("DATA"))

    def _pipelined(self, client: smtplib.SMTP, tx: Transaction, mail: str, rcpts: list[str]) -> dict[str, Reply]:
        """RFC 2920: the envelope and DATA in one write, their replies read in order, then the body."""
        mail_code, mail_message = self._mail_reply(client, command_lines(mail, *rcpts, "DATA"))
        rcpt_replies = [client.getreply() for _ in rcpts]
        data_code, data_message = client.getreply()
        if mail_code != 250:
            self._abandon(client, data_code)
            return {r: smtp_reply(mail_code, mail_message) for r in tx.recipients}
        replies = {r: smtp_reply(code, message) for r, (code, message) in zip(tx.recipients, rcpt_replies, strict=True)}
        accepted = [r for r in tx.recipients if replies[r].code in (250, 251)]
        if not accepted:
            self._abandon(client, data_code)
            return replies
        return self._conclude(client, tx, replies, accepted, data_code, data_message)

    def _conclude(self, client: smtplib.SMTP, tx: Transaction, replies: dict[str, Reply], accepted: list[str],
                  data_code: int, data_message: bytes) -> dict[str, Reply]:
        """After the reply to DATA: the body when it was 354 (else RSET); its verdict is every accepted
        recipient's reply."""
        if data_code == 354:
            data_code, data_message = self._body(client, tx.data)
        else:
            self._reset(client)
        for recipient in accepted:
            replies[recipient] = smtp_reply(data_code, data_message)
        return replies

    @staticmethod
    def _mail_reply(client: smtplib.SMTP, commands: str) -> tuple[int, bytes]:
        """Send the MAIL FROM (and what is pipelined behind it); the reply to the MAIL FROM."""
        try:
            client.send(commands)
            code, message = client.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise NothingAccepted(str(exc) or type(exc).__name__) from exc
        if code == 421:
            reply = smtp_reply(code, message)
            raise NothingAccepted(str(reply), reply)
        return code, message

    def _body(self, client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """After a 354: the message and its final dot; the server's verdict, which may take data_timeout."""
        client.sock.settimeout(self.data_timeout)
        client.send(dot_stuffed(data))
        reply = client.getreply()
        client.sock.settimeout(self.timeout)
        return reply

    def _abandon(self, client: smtplib.SMTP, data_code: int) -> None:
        """No recipient to send the body to: end a DATA the server accepted anyway with an empty message
        (RFC 2920 3.1, its reply does not matter), else reset the transaction."""
        if data_code != 354:
            self._reset(client)
            return
        try:
            client.send(b".\r\n")
            client.getreply()
        except (OSError, smtplib.SMTPException):
            pass

    @staticmethod
    def _reset(client: smtplib.SMTP) -> None:
        try:
            client.rset()
        except (OSError, smtplib.SMTPException):
            pass

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

