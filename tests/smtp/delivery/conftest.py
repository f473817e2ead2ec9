"""Fixtures for delivery tests: a loopback 'internet' (DNS zone + SMTP sinks), seeded domains and messages,
the delivery context in-process, and real `python worker.py` subprocesses."""

from __future__ import annotations

import os
import smtplib
import subprocess
import tempfile

import pytest
from sqlalchemy import select

from app.services.dkim_keys import generate_key, txt_record
from harness.databases import migrate
from harness.net import free_port, wait_port
from harness.settings import TEST_SECRET_KEY, make_settings
from mailferry.db import Database
from mailferry.destinations import DestinationGuard
from mailferry.models import Alias, Domain, User
from mailferry.resolver import make_resolver
from smtp.delivery import context
from smtp.delivery.dsn import new_message_id
from smtp.delivery.transport import DirectTransport
from smtp.routes import FORWARD, Route, build_message
from smtp.server import ServerThread
from tests.smtp.delivery.arc_keys import new_key, publish
from tests.smtp.delivery.relays import RelayCA, RelayServer
from tests.smtp.delivery.sink import SMTP_SINK, CommandLog, PostfixSink, Sink
from tests.support.postgres_cluster import PostgresCluster, postgres_bin
from tests.support.processes import Launcher, ServiceProcess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

ORIGINAL = (
    b"From: Alice Sender <alice@sender.test>\r\n"
    b"To: Hello <hello@alias.test>\r\n"
    b"Subject: Lunch on Friday?\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <lunch-1@sender.test>\r\n"
    b"X-Odd-Header:   kept   as   is  \r\n"
    b"\tfolded  continuation\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi,\r\n"
    b".leading dot line\r\n"
    b"trailing spaces   \r\n"
    b"caf\xc3\xa9\r\n"
    b"\r\n"
)


class Internet:
    """The loopback DNS zone plus SMTP sinks, all on SMTP_DIRECT_PORT like real MX hosts on port 25."""

    def __init__(self, dns_server):
        self.dns = dns_server
        self.port = free_port()
        self.sinks: list[Sink] = []

    def sink(self, ip: str, tls_context=None, smtputf8: bool = False, handler=None) -> Sink:
        sink = Sink(ip, self.port, tls_context, smtputf8, handler).start()
        self.sinks.append(sink)
        return sink

    def mx(self, domain: str, *hosts: tuple[int, str, str], ttl: int = 300) -> None:
        """hosts: (preference, host name, ip)."""
        for preference, name, ip in hosts:
            self.dns.add(domain, "MX", f"{preference} {name}.", ttl=ttl)
            self.dns.set(name, "A", ip, ttl=ttl)

    def stop(self) -> None:
        for sink in self.sinks:
            sink.stop()


@pytest.fixture
def resolver(dns_server):
    return make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1))


@pytest.fixture
def sender(dns_server):
    """sender.test: SPF for 127.0.0.7, DMARC p=reject, a published DKIM key."""
    key = new_key("sender.test", "snd")
    publish(dns_server, key)
    dns_server.set("sender.test", "TXT", "v=spf1 ip4:127.0.0.7 -all")
    dns_server.set("_dmarc.sender.test", "TXT", "v=DMARC1; p=reject")
    return key


@pytest.fixture
def internet(dns_server):
    net = Internet(dns_server)
    yield net
    net.stop()


def service_env(db_url: str, redis_url: str, internet: Internet) -> dict[str, str]:
    """The environment a worker or SMTP server process runs with against this loopback internet."""
    return {
        "DATABASE_URL": db_url, "REDIS_URL": redis_url, "RQ_QUEUE": "mf-test",
        "SMTP_HOSTNAME": "mx.mailferry.test", "SECRET_KEY": TEST_SECRET_KEY,
        "DNS_NAMESERVERS": internet.dns.nameservers, "DNS_TIMEOUT": "2", "SMTP_DIRECT_PORT": str(internet.port),
        "SMTP_CONNECT_TIMEOUT": "10", "RETRY_SCHEDULE": "1s", "MAX_QUEUE_LIFETIME": "1h",
        "DELIVERY_LEASE": "60s", "RECONCILE_INTERVAL": "1s", "LOG_LEVEL": "DEBUG",
        "DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE": "100000", "ALLOW_PRIVATE_DESTINATIONS": "true",
        "REQUIRE_VERIFIED_DESTINATIONS": "false",  # as in make_settings: tests forward to made-up addresses
    }


@pytest.fixture
def env(db_url, redis_url, internet) -> dict[str, str]:
    """The environment a worker runs with (also what in-process settings are built from)."""
    return service_env(db_url, redis_url, internet)


@pytest.fixture
def dsettings(env):
    return make_settings(**env)


@pytest.fixture
def ctx(dsettings):
    yield context.configure(dsettings)
    context.reset()


@pytest.fixture
def relay_ca(tmp_path) -> RelayCA:
    return RelayCA(str(tmp_path))


@pytest.fixture
def relay_server(relay_ca):
    """start(ip, mode="starttls"|"ssl", mechanisms=(...), port=None) -> a running loopback relay."""
    started: list[RelayServer] = []

    def start(ip: str, mode: str = "starttls", port: int | None = None, **kwargs) -> RelayServer:
        server = RelayServer(relay_ca, ip, port or free_port(ip), mode=mode, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def configure(env, relay_ca):
    """configure(**settings) -> the in-process delivery context with those settings over `env`."""

    def build(**overrides) -> context.Context:
        return context.configure(make_settings(**{**env, "SMTP_RELAY_CA_FILE": relay_ca.ca_file, **overrides}))

    yield build
    context.reset()


class World:
    """Domains, aliases and DKIM keys in the database, with their DNS records published."""

    def __init__(self, db: Database, settings, internet: Internet):
        self.db = db
        self.settings = settings
        self.internet = internet

    def domain(self, name: str, dkim: bool = True) -> int:
        with self.db.session() as s:
            owner = s.scalar(select(User).where(User.email == "owner@example.test"))
            if owner is None:
                owner = User(email="owner@example.test", password_hash="x")
                s.add(owner)
            domain = Domain(name=name, owner=owner, verify_token="token", verified=True)
            s.add(domain)
            s.flush()
            if dkim:
                key = generate_key(s, domain, self.settings.SECRET_KEY)
                record, value = txt_record(key, name)
                self.internet.dns.add(record, "TXT", value)
            return domain.id

    def alias(self, domain_id: int, local_part: str, *destinations: str) -> Route:
        with self.db.session() as s:
            alias = Alias(domain_id=domain_id, local_part=local_part, destinations=list(destinations))
            s.add(alias)
            s.flush()
            name = s.get(Domain, domain_id).name
            return Route(f"{local_part}@{name}", tuple(destinations), FORWARD, domain_id, alias.id)

    def seed(self, routes: list[Route], *, mail_from: str = "alice@sender.test", raw: bytes = ORIGINAL,
             findings: dict | None = None) -> str:
        """A spooled message; `findings` are the inbound checks' columns (auth_results, dsn_block, ...)."""
        message_id = new_message_id()
        with self.db.session() as s:
            s.add(build_message(message_id, mail_from=mail_from, routes=routes, raw=raw, peer="198.51.100.7",
                                helo="client.sender.test", findings=findings))
        return message_id


@pytest.fixture
def world(db, dsettings, internet) -> World:
    return World(db, dsettings, internet)


class WorkerProcess(ServiceProcess):
    """`python worker.py` in its own process group (the RQ scheduler is a forked child)."""

    def __init__(self, env: dict[str, str], log_path: str):
        super().__init__(["worker.py"], env, log_path)


class SmtpProcess(ServiceProcess):
    """`python -m smtp` listening on 127.0.0.1:port."""

    def __init__(self, env: dict[str, str], log_path: str):
        self.port = free_port()
        super().__init__(["-m", "smtp"], {**env, "SMTP_LISTEN": f"127.0.0.1:{self.port}"}, log_path)

    def start(self) -> "SmtpProcess":
        super().start()
        wait_port("127.0.0.1", self.port, timeout=30)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


@pytest.fixture
def workers(env, tmp_path):
    """start(**settings) -> a running `python worker.py` on `env` plus those settings; SIGKILLed after the test."""
    launch = Launcher(WorkerProcess, env, str(tmp_path), "worker")
    yield launch
    launch.kill_all()


@pytest.fixture
def smtp_servers(env, tmp_path):
    """start(**settings) -> a running `python -m smtp` on the workers' settings; SIGKILLed after the test."""
    launch = Launcher(SmtpProcess, env, str(tmp_path), "smtp")
    yield launch
    launch.kill_all()


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The addresses DirectTransport opened a new connection to, in order."""
    calls: list[str] = []
    real = DirectTransport._open

    def counting(self, host, address):
        calls.append(address)
        return real(self, host, address)

    monkeypatch.setattr(DirectTransport, "_open", counting)
    return calls


@pytest.fixture
def writes(monkeypatch) -> list[bytes]:
    """Every chunk an smtplib client wrote to its socket, in order (the real send still runs)."""
    chunks: list[bytes] = []
    real = smtplib.SMTP.send

    def recording(self, s):
        chunks.append(s.encode(self.command_encoding) if isinstance(s, str) else bytes(s))
        return real(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", recording)
    return chunks


@pytest.fixture
def mx_port() -> int:
    """The port of the MX hosts a bare DirectTransport (the `direct` fixture) talks to."""
    return free_port()


@pytest.fixture
def direct(mx_port):
    transport = DirectTransport(hostname="mx.mailferry.test", port=mx_port, timeout=10, require_tls=False,
                                guard=DestinationGuard(allow_private=True))
    yield transport
    transport.close()


@pytest.fixture
def command_sink(mx_port):
    """start(ip, **CommandLog options) -> an aiosmtpd sink on ip:mx_port that offers PIPELINING (unless
    pipelining=False) and logs the commands it gets."""
    started: list[Sink] = []

    def start(ip: str, **options) -> Sink:
        sink = Sink(ip, mx_port, handler=CommandLog(**options)).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def postfix_sink(mx_port):
    """Postfix's smtp-sink on 127.0.0.2:mx_port."""
    if not os.access(SMTP_SINK, os.X_OK):
        pytest.skip("Postfix's smtp-sink is not installed (scripts/system_deps.sh postfix)")
    sink = PostfixSink("127.0.0.2", mx_port).start()
    yield sink
    sink.stop()


class Forwarding:
    """The whole path for one alias: SMTP in (a live inbound server), a `python worker.py`, the destination's sink."""

    RECIPIENT = "hello@alias.test"
    SENDER = "alice@sender.test"

    def __init__(self, world: World, internet: Internet, worker: WorkerProcess, dsettings):
        world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
        internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
        self.sink = internet.sink("127.0.0.2")
        self.db = world.db
        self.worker = worker
        self.inbound = ServerThread(dsettings.replace(SMTP_LISTEN=("127.0.0.1", 0), RATE_LIMIT_IP_PER_MINUTE=0,
                                                      RATE_LIMIT_ALIAS_PER_HOUR=0, RATE_LIMIT_DOMAIN_PER_HOUR=0))
        self.address = self.inbound.start()

    def send(self, raw: bytes) -> tuple[int, bytes]:
        """The reply to DATA for `raw` (sent as is: smtplib dot-stuffs it and adds the terminator)."""
        with smtplib.SMTP(*self.address, timeout=30) as client:
            client.ehlo("client.sender.test")
            client.mail(self.SENDER, ["BODY=8BITMIME"])
            code, text = client.rcpt(self.RECIPIENT)
            assert code == 250, (code, text)
            return client.data(raw)

    def stop(self) -> None:
        self.inbound.stop()


@pytest.fixture
def forwarding(world, internet, workers, dsettings) -> Forwarding:
    path = Forwarding(world, internet, workers(), dsettings)
    yield path
    path.stop()


@pytest.fixture
def private_postgres():
    """(cluster, url): a private PostgreSQL cluster, started, and its migrated database; the test may stop it."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        url = cluster.create_database("mailferry")
        migrate(url)
        yield cluster, url
    finally:
        cluster.destroy()


@pytest.fixture
def small_disk():
    """A 16 MB tmpfs mounted for the test (a disk a test can fill); skipped where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tempfile.mkdtemp(prefix="mf-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mountpoint],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        os.rmdir(mountpoint)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", mountpoint], check=False)
        os.rmdir(mountpoint)
