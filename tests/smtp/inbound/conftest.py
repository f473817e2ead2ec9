"""Fixtures for the inbound pipeline end to end: a real inbound server (real SMTP over sockets), senders whose
SPF, DKIM keys and DMARC records live on the loopback DNS server, alias domains with their own DKIM keys and
policy columns, and the in-process delivery context (tests/smtp/delivery/conftest.py) to run the worker's job
to a sink."""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass

import dkim
import pytest
from sqlalchemy import func, select, update

from harness.settings import make_settings
from mailferry.dkim_keys import SigningKey
from mailferry.models import Delivery, Domain, Message
from mailferry.resolver import make_resolver
from smtp.server import ServerThread
from tests.smtp.delivery import conftest as delivery
from tests.smtp.delivery.arc_keys import Dns, new_key, publish

QUEUED = re.compile(r"^2\.0\.0 Ok: queued as ([A-Z2-7]{16})$")
HOSTNAME = "mx.mailferry.test"  # SMTP_HOSTNAME of every test setting: our authserv-id
ALIAS_DOMAIN = "forward-example.net"
DEST_DOMAIN = "dest-example.org"
DEST_IP = "127.0.0.2"
# the delivery fixtures, shared: the loopback internet (MX + sinks), the worker's settings and its context
internet, env, dsettings, ctx = delivery.internet, delivery.env, delivery.dsettings, delivery.ctx
_KEYS: dict[str, SigningKey] = {}  # RSA key generation is slow: one key per sender domain per session


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def line(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def message_id(self) -> str:
        match = QUEUED.match(self.text)
        assert match, self.line
        return match.group(1)


def compose(from_: str = "Alice <alice@sender-example.com>", *, to: str = f"john@{ALIAS_DOMAIN}",
            subject: str = "Lunch on Friday?", body: str = "Hi John,\r\n\r\nlunch on Friday?\r\n\r\nAlice\r\n",
            message_id: str | None = "<lunch-1@sender-example.com>", date: str | None = "Mon, 23 Nov 2026 09:00:00 +0000",
            extra: str = "") -> bytes:
    headers = [f"From: {from_}", f"To: {to}", f"Subject: {subject}"]
    if date is not None:
        headers.append(f"Date: {date}")
    if message_id is not None:
        headers.append(f"Message-ID: {message_id}")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(headers) + "\r\n" + extra + "\r\n" + body).encode()


def sign(raw: bytes, key: SigningKey, include: list[bytes] | None = None) -> bytes:
    """`raw` with the sender's DKIM signature (relaxed/relaxed) prepended."""
    signature = dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private_pem,
                          canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
    return signature + raw


def send(address: tuple[str, int], raw: bytes, *, mail_from: str = "alice@sender-example.com",
         rcpts: tuple[str, ...] = (f"john@{ALIAS_DOMAIN}",), helo: str = "mail.sender-example.com") -> Reply:
    """One message over SMTP; the reply to DATA (or to the first MAIL/RCPT that was refused)."""
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo(helo)
        code, text = client.mail(mail_from)
        if code != 250:
            return Reply(code, text.decode())
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code >= 300:
                return Reply(code, text.decode())
        code, text = client.data(raw)
        return Reply(code, text.decode())


def message_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Message))


def stored(db, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


def delivery_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Delivery))


class Senders:
    """Sender domains published on the loopback DNS: SPF, DMARC and (optionally) a DKIM key."""

    def __init__(self, dns_server):
        self.dns = dns_server

    def add(self, domain: str, *, spf: str | None = "v=spf1 ip4:127.0.0.1 -all",
            dmarc: str | None = "v=DMARC1; p=reject", dkim_key: bool = False, ttl: int = 300) -> SigningKey | None:
        if spf is not None:
            self.dns.set(domain, "TXT", spf, ttl=ttl)
        if dmarc is not None:
            self.dns.set(f"_dmarc.{domain}", "TXT", dmarc, ttl=ttl)
        if not dkim_key:
            return None
        key = _KEYS.get(domain) or _KEYS.setdefault(domain, new_key(domain, "s1"))
        publish(self.dns, key)
        return key


@pytest.fixture
def senders(dns_server) -> Senders:
    return Senders(dns_server)


class Site:
    """An alias domain of ours (DKIM key in the database and in DNS) with one alias to a sink's domain."""

    def __init__(self, db, settings, internet):
        self.db = db
        self.world = delivery.World(db, settings, internet)
        self.internet = internet

    def domain(self, name: str = ALIAS_DOMAIN, **policy) -> int:
        domain_id = self.world.domain(name)
        if policy:
            self.policy(domain_id, **policy)
        return domain_id

    def policy(self, domain_id: int, **columns) -> None:
        with self.db.session() as s:
            s.execute(update(Domain).where(Domain.id == domain_id).values(**columns))

    def alias(self, domain_id: int, local_part: str = "john", *destinations: str):
        return self.world.alias(domain_id, local_part, *(destinations or (f"bob@{DEST_DOMAIN}",)))

    def destination(self, domain: str = DEST_DOMAIN, ip: str = DEST_IP):
        self.internet.mx(domain, (10, f"mx.{domain}", ip))
        return self.internet.sink(ip)


@pytest.fixture
def site(db, dsettings, internet) -> Site:
    return Site(db, dsettings, internet)


@pytest.fixture
def inbound(db_url, redis_url, dns_server):
    """inbound(**settings) -> (host, port) of a running inbound server with those settings (strings, as in the
    environment) over the test defaults; every one started is stopped after the test."""
    threads: list[ServerThread] = []

    def start(**overrides) -> tuple[str, int]:
        values = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "SMTP_LISTEN": "127.0.0.1:0",
                  "DNS_NAMESERVERS": dns_server.nameservers, "DNS_TIMEOUT": "2", **overrides}
        thread = ServerThread(make_settings(**values))
        threads.append(thread)
        return thread.start()

    yield start
    for thread in threads:
        thread.stop()


def arc_verifies(data: bytes, settings) -> tuple[bool, str]:
    cv, _, reason = dkim.arc_verify(data, dnsfunc=Dns(make_resolver(settings)))
    return cv == dkim.CV_Pass, reason
