"""The inbound SMTP server: one asyncio listener, its handler, the spool and the recipient lookups."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from mailferry.db import Database
from mailferry.logs import get_logger, log
from mailferry.metrics import smtp_metrics
from mailferry.metrics_server import MetricsServer
from mailferry.settings import Settings

from . import replies
from .handler import InboundHandler
from .inbound.pipeline import InboundChecks
from .inbound.rate_limits import Limits, RateLimiter
from .inbound.spam import RspamdClient
from .peer_limits import PeerLimits
from .protocol import InboundSMTP, install_aiosmtpd_speedups
from .recipients import RecipientResolver
from .spool import Spooler
from .srs import Srs

logger = get_logger("smtp.server")
BANNER_IDENT = "ESMTP"  # aiosmtpd's default ident names its version
LOOKUP_THREADS = 8
CHECK_THREADS = 16  # the inbound checks of messages at the end of DATA: DNS waits and DKIM hashing
BACKLOG = 1024
# Per-session budgets like Postfix's smtpd_junk_command_limit; over one -> 421 4.7.0 and the session closes.
COMMAND_LIMITS = {"NOOP": 100, "RSET": 100, "VRFY": 20, "EXPN": 20, "HELP": 20, "EHLO": 20, "HELO": 20,
                  "STARTTLS": 2, "AUTH": 5, "*": 1_000_000}
SHUTDOWN_GRACE = 15.0  # seconds a session that is committing a message gets to finish at shutdown


def make_tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.SMTP_TLS_CERT and settings.SMTP_TLS_KEY):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.SMTP_TLS_CERT, settings.SMTP_TLS_KEY)
    return context


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class InboundServer:
    """`serve_metrics`: serve METRICS_LISTEN (its /readyz says whether this server listens); off in the
    servers of `python -m smtp` with several processes, whose parent serves it for all of them."""

    def __init__(self, settings: Settings, serve_metrics: bool = True):
        install_aiosmtpd_speedups()
        self.settings = settings
        self.db = Database(settings.DATABASE_URL, durable_commits=True)  # the spool's commit is what a 250 promises
        self.lookups = ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="rcpt-lookup")
        srs = Srs(settings.srs_secret, settings.SRS_MAX_AGE_DAYS)
        self.resolver = RecipientResolver(self.db, srs, settings.SMTP_RECIPIENT_CACHE_TTL, settings.SMTP_HOSTNAME,
                                          require_verified=settings.REQUIRE_VERIFIED_DESTINATIONS)
        self.spooler = Spooler(self.db, settings.REDIS_URL, settings.RQ_QUEUE)
        self.checks_pool = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="inbound-checks")
        spam = RspamdClient(settings.RSPAMD_URL, settings.RSPAMD_TIMEOUT) if settings.RSPAMD_URL else None
        self.limiter = RateLimiter(settings.REDIS_URL, Limits.from_settings(settings))
        self.handler = InboundHandler(settings, self.resolver, self.spooler, self.lookups,
                                      InboundChecks(settings, self.checks_pool, spam), self.limiter)
        self.tls_context = make_tls_context(settings)
        self.sessions: weakref.WeakSet[InboundSMTP] = weakref.WeakSet()
        self.peer_limits = PeerLimits(settings.SMTP_MAX_CONNECTIONS_PER_IP)
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics: MetricsServer | None = None
        if serve_metrics and settings.METRICS_LISTEN:
            self.metrics = MetricsServer(*settings.METRICS_LISTEN, ready=self.listening)
        self._closing = False

    def listening(self) -> bool:
        """Accepting connections and not shutting down (the metrics port's /readyz)."""
        return self._server is not None and not self._closing

    def _new_session(self) -> InboundSMTP:
        session = InboundSMTP(
            self.handler,
            peer_limits=self.peer_limits,
            hostname=self.settings.SMTP_HOSTNAME,  # without it aiosmtpd calls a blocking getfqdn() per connection
            ident=BANNER_IDENT,
            data_size_limit=self.settings.SMTP_MAX_MESSAGE_SIZE,
            tls_context=self.tls_context,
            timeout=self.settings.SMTP_IDLE_TIMEOUT,
            command_timeout=self.settings.SMTP_COMMAND_TIMEOUT,
            data_timeout=self.settings.SMTP_DATA_TIMEOUT,
            command_call_limit=COMMAND_LIMITS,
            loop=self._loop,
        )
        self.sessions.add(session)
        return session

    async def start(self, sock: socket.socket | None = None, reuse_port: bool = False) -> tuple[str, int]:
        """Listen (on `sock`, or bind SMTP_LISTEN) and return the bound (host, port)."""
        self._loop = asyncio.get_running_loop()
        if sock is None:
            sock = bind_socket(*self.settings.SMTP_LISTEN, reuse_port=reuse_port)
        self.spooler.start()
        smtp_metrics()  # made now, so the first scrape lists every metric (a child's: before its first session)
        if self.metrics is not None:
            self.metrics.start()
        self._server = await self._loop.create_server(self._new_session, sock=sock, backlog=BACKLOG)
        host, port = sock.getsockname()[:2]
        log(logger, logging.INFO, "listening", host=host, port=port, hostname=self.settings.SMTP_HOSTNAME,
            tls=self.tls_context is not None, authentication=self.settings.INBOUND_AUTHENTICATION,
            spam_filter=self.settings.RSPAMD_URL or "off (RSPAMD_URL is empty)")
        return host, port

    async def close(self) -> None:
        """Stop accepting, let sessions that are committing a message finish, close the rest with 421."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while any(s.busy for s in self.sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        goodbye = replies.SHUTTING_DOWN.format(host=self.settings.SMTP_HOSTNAME).encode("ascii") + b"\r\n"
        for session in list(self.sessions):
            transport = session.transport
            if transport is not None and not transport.is_closing():
                transport.write(goodbye)
                transport.close()
        await self._server.wait_closed()
        await self._loop.run_in_executor(None, self.spooler.stop)
        self.lookups.shutdown(wait=True)
        self.checks_pool.shutdown(wait=True)
        await self.limiter.close()
        self.db.dispose()
        if self.metrics is not None:
            await self._loop.run_in_executor(None, self.metrics.stop)
        self._server = None
        self._closing = False
        log(logger, logging.INFO, "stopped")


class ServerThread:
    """An InboundServer on its own event loop thread (tests, embedding): `start()` -> (host, port), `stop()`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server: InboundServer | None = None
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> tuple[str, int]:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="smtp-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError("SMTP server did not start within 30s")
        if self._error is not None:
            raise self._error
        return self.address

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self.server = InboundServer(self.settings)
            self.address = loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self.server.close())
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(60)
        self._thread = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
