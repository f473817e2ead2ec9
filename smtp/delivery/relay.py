"""Relay SMTP client: the configured relays in order, with AUTH, verified TLS, failover, a circuit breaker
per relay and a small per-process pool so consecutive messages reuse one connection.

`send()` follows DirectTransport's contract: a generator yielding each transaction's replies as soon as its
DATA is answered. A transaction that a relay could not take (connection, TLS or AUTH failure, connection
lost, every recipient deferred) is tried on the next relay before it is yielded. The password is only ever
handed to smtplib; no reply, log line or exception text built here contains it.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailferry.logs import log
from smtp.routing.breaker import OPEN, CircuitBreaker

from .exchange import Exchange, Transaction, smtp_reply
from .outcome import Reply, classify
from .transport import SessionError, TransactionResult

logger = logging.getLogger(__name__)
IDLE_REUSE = 30.0        # seconds an idle pooled connection is still worth an RSET check
MAX_PER_SESSION = 100    # messages per connection before it is renewed (Gmail's relay allows about 100)


@dataclass(frozen=True)
class Relay:
    name: str
    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    use_tls: bool = True
    use_ssl: bool = False
    from_policy: str = "keep"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Relay":
        use_ssl = bool(data.get("use_ssl", False))
        use_tls = bool(data.get("use_tls", not use_ssl)) and not use_ssl
        port = int(data.get("port") or (465 if use_ssl else 587))
        return cls(str(data.get("name") or data["host"]), str(data["host"]), port, str(data.get("user") or ""),
                   str(data.get("password") or ""), use_tls, use_ssl, str(data.get("from_policy") or "keep"))

    @property
    def route(self) -> str:
        return f"relay:{self.name}"


@dataclass
class _Pooled:
    client: smtplib.SMTP
    tls: bool
    last_used: float
    sent: int = 0


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Relay certificates are verified (host name included); `ca_file` adds CAs to the system ones."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class RelayTransport:
    def __init__(self, relays: Sequence[Relay], breaker: CircuitBreaker, *, hostname: str, timeout: float,
                 ca_file: str = "", data_timeout: float | None = None):
        self.relays = tuple(relays)
        self.breaker = breaker
        self.hostname = hostname
        self.timeout = timeout
        self.context = tls_context(ca_file)
        self._pool: dict[str, _Pooled] = {}
        self._lock = threading.Lock()
        # The transaction itself (SIZE, 8BITMIME, SMTPUTF8, PIPELINING, per-recipient replies) is the direct client's.
        self._tx = Exchange(timeout, max(timeout, data_timeout or timeout))

    def send(self, units: Sequence[Any], build: Callable[[Relay, Any], Transaction],
             message_id: str = "") -> Iterator[TransactionResult]:
        """Deliver each unit (the caller's group of recipients) through the first relay that takes it;
        `build(relay, unit)` makes its transaction, since the sender policy depends on the relay."""
        pending = list(units)
        last: dict[int, tuple[Reply, Relay | None]] = {}
        skipped: list[str] = []
        for relay in self.relays:
            if not pending:
                return
            if not self.breaker.allow(relay.name):
                log(logger, logging.INFO, "relay skipped: circuit open", message_id=message_id, relay=relay.name)
                skipped.append(relay.name)
                continue
            pending = yield from self._through(relay, pending, build, last, message_id)
        for i, unit in enumerate(pending):
            reply, relay = last.get(id(unit), (self._none_left(skipped), None))
            tx = build(relay or self.relays[0], unit)
            yield TransactionResult(tx, {r: reply for r in tx.recipients}, relay.host if relay else "", False,
                                    final=i == len(pending) - 1, relay=relay.name if relay else "")

    def _through(self, relay: Relay, pending: list[Any], build: Callable[[Relay, Any], Transaction],
                 last: dict[int, tuple[Reply, Relay | None]], message_id: str) -> Iterator[TransactionResult]:
        """Send what it takes through one relay; returns the units left for the next relay."""
        try:
            pooled = self._session(relay)
        except SessionError as exc:
            self._failed(relay, exc.reply, message_id)
            for unit in pending:
                last[id(unit)] = (exc.reply, relay)
            return pending
        left: list[Any] = []
        while pending:
            unit = pending.pop(0)
            tx = build(relay, unit)
            try:
                replies = self._tx.transaction(pooled.client, tx)
            except (OSError, smtplib.SMTPException) as exc:
                self._drop(relay)
                lost = Reply(None, f"4.4.2 connection to relay {relay.name} lost: {exc or type(exc).__name__}")
                self._failed(relay, lost, message_id)
                last[id(unit)] = (lost, relay)
                return [unit, *pending, *left]
            pooled.sent += 1
            pooled.last_used = time.monotonic()
            if all(classify(r) == "deferred" for r in replies.values()):
                last[id(unit)] = (next(iter(replies.values())), relay)
                self._failed(relay, last[id(unit)][0], message_id)
                left.append(unit)
                continue
            self.breaker.record_success(relay.name)
            yield TransactionResult(tx, replies, relay.host, pooled.tls, final=not pending and not left,
                                    relay=relay.name)
        if pooled.sent >= MAX_PER_SESSION:
            self._drop(relay)
        return left

    def _failed(self, relay: Relay, reply: Reply, message_id: str) -> None:
        """A relay did not take the mail: count it against its circuit; the next relay gets it."""
        self.breaker.record_failure(relay.name)
        opened = self.breaker.state(relay.name).state == OPEN
        log(logger, logging.WARNING, "relay failed", message_id=message_id, relay=relay.name,
            code=reply.code, reply=reply.text[:300], circuit_open=opened)

    @staticmethod
    def _none_left(skipped: list[str]) -> Reply:
        if skipped:
            return Reply(None, f"4.4.1 no relay available: circuit open for {', '.join(skipped)}")
        return Reply(None, "4.4.1 no relay configured")

    # ---- connections ----

    def _session(self, relay: Relay) -> _Pooled:
        with self._lock:
            pooled = self._pool.pop(relay.name, None)
        if pooled is not None:
            if time.monotonic() - pooled.last_used < IDLE_REUSE and self._alive(pooled.client):
                with self._lock:
                    self._pool[relay.name] = pooled
                return pooled
            self._quit(pooled.client)
        pooled = _Pooled(self._open(relay), relay.use_tls or relay.use_ssl, time.monotonic())
        with self._lock:
            self._pool[relay.name] = pooled
        return pooled

    @staticmethod
    def _alive(client: smtplib.SMTP) -> bool:
        try:
            return client.rset()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    def _open(self, relay: Relay) -> smtplib.SMTP:
        where = f"relay {relay.name} ({relay.host}:{relay.port})"
        if relay.use_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(local_hostname=self.hostname, timeout=self.timeout,
                                                    context=self.context)
        else:
            client = smtplib.SMTP(local_hostname=self.hostname, timeout=self.timeout)
        client._host = relay.host  # smtplib verifies the certificate (and sends SNI) for this name
        try:
            code, message = client.connect(relay.host, relay.port)
            if code != 220:
                raise SessionError(smtp_reply(code, message))
            client.ehlo_or_helo_if_needed()
            if relay.use_tls:
                if not client.has_extn("starttls"):
                    raise SessionError(Reply(None, f"4.7.10 {where} does not offer STARTTLS"))
                client.starttls(context=self.context)
                client.ehlo()
            if relay.user:
                self._login(client, relay, where)
            return client
        except SessionError:
            self._quit(client)
            raise
        except ssl.SSLError as exc:
            self._quit(client)
            why = exc.reason or exc
            if isinstance(exc, ssl.SSLCertVerificationError):
                why = f"certificate verify failed: {exc.verify_message}"
            raise SessionError(Reply(None, f"4.7.5 {where}: TLS failed: {why}")) from None
        except smtplib.SMTPResponseException as exc:
            self._quit(client)
            raise SessionError(smtp_reply(exc.smtp_code, exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            self._quit(client)
            raise SessionError(Reply(None, f"4.4.1 {where}: {exc or type(exc).__name__}")) from None

    @staticmethod
    def _login(client: smtplib.SMTP, relay: Relay, where: str) -> None:
        try:
            client.login(relay.user, relay.password)
        except smtplib.SMTPAuthenticationError as exc:
            said = smtp_reply(exc.smtp_code, exc.smtp_error)
            raise SessionError(Reply(None, f"4.7.0 relay {relay.name}: authentication failed ({said})")) from None
        except smtplib.SMTPNotSupportedError:
            raise SessionError(Reply(None, f"4.7.0 {where} does not offer AUTH")) from None
        except smtplib.SMTPException as exc:  # no mechanism in common
            raise SessionError(Reply(None, f"4.7.0 relay {relay.name}: authentication failed "
                                           f"({type(exc).__name__})")) from None

    def _drop(self, relay: Relay) -> None:
        with self._lock:
            pooled = self._pool.pop(relay.name, None)
        if pooled is not None:
            self._quit(pooled.client)

    @staticmethod
    def _quit(client: smtplib.SMTP) -> None:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            try:
                client.close()
            except OSError:
                pass

    def close(self) -> None:
        """QUIT every pooled connection (worker shutdown)."""
        for relay in self.relays:
            self._drop(relay)
