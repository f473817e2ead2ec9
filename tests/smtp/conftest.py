"""Inbound fixtures: a seeded set of domains and aliases, a running server, a raw SMTP client."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import pytest

from harness.settings import make_settings
from mailferry.db import Database
from mailferry.models import CATCH_ALL, Alias, Domain, User
from smtp.certs import ensure_self_signed
from smtp.server import ServerThread
from tests.conftest import DB_KINDS

VERIFIED = "alias.test"
CATCH_ALL_DOMAIN = "catchall.test"
UNVERIFIED = "unverified.test"


@dataclass
class World:
    domain_id: int
    catchall_domain_id: int
    aliases: dict[str, int]


def seed_world(db) -> World:
    """Domains and aliases every inbound test speaks to."""
    with db.session() as s:
        owner = User(email="owner@example.org", password_hash="x")
        verified = Domain(name=VERIFIED, owner=owner, verify_token="t1", verified=True)
        catchall = Domain(name=CATCH_ALL_DOMAIN, owner=owner, verify_token="t2", verified=True)
        unverified = Domain(name=UNVERIFIED, owner=owner, verify_token="t3", verified=False)
        aliases = {
            "john": Alias(domain=verified, local_part="john", destinations=["john@dest.test"]),
            "team": Alias(domain=verified, local_part="team", destinations=["a@dest.test", "b@other.test"]),
            "off": Alias(domain=verified, local_part="off", destinations=["off@dest.test"], enabled=False),
            "john+vip": Alias(domain=verified, local_part="john+vip", destinations=["vip@dest.test"]),
            "*": Alias(domain=catchall, local_part=CATCH_ALL, destinations=["all@dest.test"]),
            "sales": Alias(domain=catchall, local_part="sales", destinations=["sales@dest.test"]),
            "ghost": Alias(domain=unverified, local_part="ghost", destinations=["ghost@dest.test"]),
        }
        s.add_all([owner, verified, catchall, unverified, *aliases.values()])
        s.flush()
        return World(verified.id, catchall.id, {k: a.id for k, a in aliases.items()})


@pytest.fixture
def world(db) -> World:
    return seed_world(db)


@pytest.fixture
def start_server(settings):
    """start_server(**overrides) -> (host, port) of a running inbound server; stopped after the test."""
    threads = []

    def start(**overrides):
        thread = ServerThread(settings.replace(**overrides))
        threads.append(thread)
        return thread.start()

    yield start
    for thread in threads:
        thread.stop()


@pytest.fixture
def server(world, start_server) -> tuple[str, int]:
    return start_server()


class ErrorRecords(logging.Handler):
    """The ERROR records logged while it is attached: an exception inside a session, a failed commit."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))  # with the traceback, if any
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        """The records so far, formatted, and forget them."""
        taken = [self.format(r) for r in self.records]
        self.records.clear()
        return taken


@dataclass
class SharedServer:
    address: tuple[str, int]
    db: Database
    world: World
    settings: object
    errors: ErrorRecords


@pytest.fixture(scope="module")
def shared_server(request, tmp_path_factory, redis_server, dns_server_session):
    """One seeded inbound server, with STARTTLS, for a whole module (property tests send it hundreds of
    sessions). PostgreSQL when the run includes it: it refuses what SQLite stores (NUL in text, invalid
    UTF-8), so it is the strict one. Rate limits are off and the idle timeout short: a fuzzing client sends
    from 127.0.0.1 all the time. `errors` collects what the process logs at ERROR."""
    directory = tmp_path_factory.mktemp("shared-server")
    if "postgresql" in DB_KINDS:
        request.getfixturevalue("postgres_database").truncate()
        url = request.getfixturevalue("postgres_database").url
    else:
        url = request.getfixturevalue("sqlite_template").fresh_url(str(directory))
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    db = Database(url)
    world = seed_world(db)
    settings = make_settings(DATABASE_URL=url, REDIS_URL=redis_server.url, RQ_QUEUE="mf-shared",
                             SMTP_LISTEN="127.0.0.1:0", DNS_NAMESERVERS=dns_server_session.nameservers,
                             DNS_TIMEOUT=2, SMTP_IDLE_TIMEOUT=2, RATE_LIMIT_IP_PER_MINUTE=0,
                             RATE_LIMIT_ALIAS_PER_HOUR=0, RATE_LIMIT_DOMAIN_PER_HOUR=0,
                             REFUSED_RCPT_LIMIT_PER_HOUR=0, SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key)
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    thread = ServerThread(settings)
    address = thread.start()
    yield SharedServer(address, db, world, settings, errors)
    thread.stop()
    logging.getLogger().removeHandler(errors)
    db.dispose()


class RawClient:
    """A line-level SMTP conversation over a plain socket, for what smtplib will not send."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""
        self.greeting = self.reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed, buffer={self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> str:
        """One whole (possibly multi-line) reply as text, lines joined by newlines."""
        lines = [self._line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b"-":
            lines.append(self._line())
        return "\n".join(line.decode("utf-8", "replace") for line in lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """True when the server has closed the connection (after what was buffered)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client(server):
    clients = []

    def connect(address=None) -> RawClient:
        client = RawClient(address or server)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


__all__ = ["make_settings", "seed_world", "World", "SharedServer", "RawClient", "VERIFIED", "CATCH_ALL_DOMAIN", "UNVERIFIED"]
