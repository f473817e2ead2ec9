"""What a receiver sees: forwarded copies scanned by a real rspamd acting as the destination's filter.

The whole path runs: a sender's message over SMTP to our inbound server, its checks, the worker's forward
(SRS, Authentication-Results, DKIM, ARC) to a loopback MX, and that copy scanned as the destination would
scan it, arriving from our address with our HELO."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from sqlalchemy import select

from harness.settings import make_settings
from mailferry.models import Domain, Message
from smtp.delivery import context
from smtp.delivery.job import run
from smtp.delivery.signing import dkim_signature
from smtp.inbound.spam import RspamdClient
from smtp.server import ServerThread
from tests.smtp.delivery.arc_keys import new_key, publish
from tests.smtp.delivery.conftest import World, env, internet  # noqa: F401  (fixtures)

HOSTNAME = "mx.forwarder.net"
WITHOUT_ID = (b"From: Alice Example <alice@{domain}>\r\nTo: hello@{alias}\r\nSubject: Lunch on Friday?\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              b"Hi Bob,\r\n\r\nare we still on for lunch on Friday? The usual place at noon.\r\n\r\nAlice\r\n")


@pytest.fixture
def forwarder(request, env, internet, db):  # noqa: F811
    """Our server on loopback, forwarding hello@<alias domain> to bob@dest-rx.com, whose MX is 127.0.0.2. Each
    test has its own alias domain: the receiver caches the DKIM key a test publishes for its TTL."""
    alias = f"alias-{request.node.originalname.split('_')[2]}-{request.node.callspec.id}.com"
    settings = make_settings(**{**env, "SMTP_HOSTNAME": HOSTNAME, "SMTP_LISTEN": "127.0.0.1:0"})
    world = World(db, settings, internet)
    domain_id = world.domain(alias)
    world.alias(domain_id, "hello", "bob@dest-rx.com")
    internet.dns.set(alias, "TXT", "v=spf1 ip4:127.0.0.1 -all")  # our address sends for the SRS envelope
    internet.mx("dest-rx.com", (10, "mx.dest-rx.com", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    server = ServerThread(settings)
    address = server.start()
    ctx = context.configure(settings)
    yield address, ctx, sink, domain_id, alias
    context.reset()
    server.stop()


def forward(address, ctx, db, sender: str, raw: bytes, alias: str) -> None:
    with smtplib.SMTP(*address) as client:
        client.sendmail(sender, [f"hello@{alias}"], raw)
    with db.session() as s:
        [message_id] = s.scalars(select(Message.id))
    run(ctx, message_id)


def scanned(rspamd_url: str, copy) -> set[str]:
    client = RspamdClient(rspamd_url, 20)
    verdict = asyncio.run(client.scan(copy.data, ip="127.0.0.1", helo=HOSTNAME, mail_from=copy.mail_from,
                                      rcpts=["bob@dest-rx.com"], hostname="mx.dest-rx.com"))
    assert verdict.scanned, verdict.error
    return set(verdict.symbols)


def test_a_signed_sender_forwarded_passes_every_check_at_the_receiver(forwarder, rspamd, internet, db):  # noqa: F811
    address, ctx, sink, _, alias = forwarder
    sender = "signed-" + alias  # a name of its own per test: the receiver caches the key
    key = new_key(sender, "s1")
    publish(internet.dns, key)
    internet.dns.set(sender, "TXT", "v=spf1 ip4:127.0.0.1 -all")
    internet.dns.set(f"_dmarc.{sender}", "TXT", "v=DMARC1; p=reject")
    raw = WITHOUT_ID.replace(b"{domain}", sender.encode()).replace(b"{alias}", alias.encode())
    forward(address, ctx, db, f"alice@{sender}", dkim_signature(raw, key) + raw, alias)

    [copy] = sink.messages
    symbols = scanned(rspamd.url, copy)
    assert {"R_DKIM_ALLOW", "ARC_ALLOW", "R_SPF_ALLOW", "DMARC_POLICY_ALLOW"} <= symbols, symbols
    assert not symbols & {"MISSING_MID", "MISSING_DATE", "SPOOF_DISPLAY_NAME", "R_SPF_FAIL", "DMARC_POLICY_REJECT"}


def test_a_rewritten_p_reject_sender_is_no_display_name_spoof(forwarder, rspamd, internet, db):  # noqa: F811
    address, ctx, sink, domain_id, alias = forwarder
    with db.session() as s:
        s.get(Domain, domain_id).dmarc_reject_policy = "rewrite"
    sender = "unsigned-" + alias
    internet.dns.set(sender, "TXT", "v=spf1 ip4:127.0.0.1 -all")  # SPF passes, no signature
    internet.dns.set(f"_dmarc.{sender}", "TXT", "v=DMARC1; p=reject")
    raw = WITHOUT_ID.replace(b"{domain}", sender.encode()).replace(b"{alias}", alias.encode())
    forward(address, ctx, db, f"alice@{sender}", raw, alias)

    [copy] = sink.messages
    assert f'From: "Alice Example via {alias}" <hello@{alias}>'.encode() in copy.data
    symbols = scanned(rspamd.url, copy)
    assert {"R_DKIM_ALLOW", "R_SPF_ALLOW"} <= symbols, symbols
    assert not symbols & {"SPOOF_DISPLAY_NAME", "MISSING_MID", "DMARC_POLICY_REJECT", "ARC_REJECT"}, symbols

