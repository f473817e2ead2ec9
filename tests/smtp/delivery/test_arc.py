"""Authentication-Results and the ARC set, checked the way a receiver does: dkimpy against the loopback DNS."""

from __future__ import annotations

import dkim
import pytest
from sqlalchemy import select

from harness.settings import make_settings
from mailferry.crypto import decrypt
from mailferry.dkim_keys import SigningKey
from mailferry.models import DkimKey
from mailferry.resolver import make_resolver
from smtp.delivery import context
from smtp.delivery.arc import arc_set
from smtp.delivery.job import run
from smtp.delivery.signing import dkim_signature
from smtp.inbound.authentication import Authenticator
from tests.smtp.delivery.arc_keys import Dns, new_key, publish
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import dkim_verifies

HOST = "mx.mailferry.test"
MESSAGE = (b"From: Alice <alice@sender.test>\r\nTo: hello@alias.test\r\nSubject: hi\r\n"
           b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <a1@sender.test>\r\n\r\nHello.\r\n")


def test_results_for_an_authenticated_sender(resolver, sender):
    signed = dkim_signature(MESSAGE, sender) + MESSAGE
    results = Authenticator(resolver, HOST).check(signed, mail_from="alice@sender.test", peer_ip="127.0.0.7",
                                                  helo="mail.sender.test")
    assert [(r.method, r.result) for r in results.results] == [("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")]
    assert results.header() == (
        b"Authentication-Results: mx.mailferry.test;\r\n\tspf=pass smtp.mailfrom=alice@sender.test;\r\n"
        b"\tdkim=pass header.d=sender.test header.s=snd;\r\n\tdmarc=pass header.from=sender.test\r\n")


def test_results_for_a_spoofed_sender(resolver, sender):
    results = Authenticator(resolver, HOST).check(MESSAGE, mail_from="alice@sender.test", peer_ip="127.0.0.9",
                                                  helo="spoofer.test")
    assert [(r.method, r.result) for r in results.results] == [("spf", "fail"), ("dkim", "none"), ("dmarc", "fail")]


def test_a_broken_signature_fails_and_dmarc_without_a_record_is_none(resolver, sender, dns_server):
    tampered = (dkim_signature(MESSAGE, sender) + MESSAGE).replace(b"Hello.", b"Hello!")
    dns_server.remove("_dmarc.sender.test")
    results = Authenticator(resolver, HOST).check(tampered, mail_from="", peer_ip="127.0.0.7", helo="sender.test")
    assert [(r.method, r.result) for r in results.results] == [("spf", "pass"), ("dkim", "fail"), ("dmarc", "none")]
    assert b"smtp.helo=sender.test" in results.header()


def test_arc_set_verifies_and_carries_our_results(resolver, sender, dns_server):
    ours = new_key("alias.test")
    publish(dns_server, ours)
    original = dkim_signature(MESSAGE, sender) + MESSAGE
    results = Authenticator(resolver, HOST).check(original, mail_from="alice@sender.test", peer_ip="127.0.0.7",
                                                  helo="mail.sender.test")
    data = results.header() + b"Received: from mail.sender.test by mx.mailferry.test; Mon, 23 Nov 2026\r\n" + original
    data = dkim_signature(data, ours) + data
    sealed = arc_set(data, ours, results) + data
    cv, sets, reason = dkim.arc_verify(sealed, dnsfunc=Dns(resolver))
    assert cv == dkim.CV_Pass, reason
    aar = [v for k, v in dkim.rfc822_parse(sealed)[0] if k == b"ARC-Authentication-Results"][0]
    assert b"i=1;" in aar and b"dkim=pass header.d=sender.test" in aar and b"spf=pass" in aar
    assert sealed.endswith(original)  # the sender's message is untouched
    assert dkim.verify(sealed, dnsfunc=Dns(resolver))  # our DKIM signature still verifies under the seal


def test_a_second_hop_extends_an_existing_chain(resolver, sender, dns_server):
    first_hop, ours = new_key("first.test"), new_key("alias.test")
    publish(dns_server, first_hop)
    publish(dns_server, ours)
    signed = dkim_signature(MESSAGE, sender) + MESSAGE
    first_results = Authenticator(resolver, "mx.first.test").check(
        signed, mail_from="alice@sender.test", peer_ip="127.0.0.7", helo="mail.sender.test")
    hop1 = first_results.header() + signed
    hop1 = arc_set(hop1, first_hop, first_results) + hop1
    results = Authenticator(resolver, HOST).check(hop1, mail_from="srs0=x@first.test", peer_ip="127.0.0.8",
                                                  helo="mx.first.test")
    assert results.result("arc") == "pass"
    data = results.header() + hop1
    sealed = arc_set(data, ours, results) + data
    cv, sets, reason = dkim.arc_verify(sealed, dnsfunc=Dns(resolver))
    assert cv == dkim.CV_Pass and len(sets) == 2, reason


def test_an_ed25519_key_does_not_seal(resolver, sender):
    results = Authenticator(resolver, HOST).check(MESSAGE, mail_from="alice@sender.test", peer_ip="127.0.0.7",
                                                  helo="x")
    key = SigningKey("alias.test", "ed", "ed25519", b"unused")
    assert arc_set(results.header() + MESSAGE, key, results) == b""


@pytest.fixture
def arc_ctx(env):
    yield context.configure(make_settings(**env, SMTP_ENABLE_ARC="true"))
    context.reset()


def test_a_forward_carries_a_verifiable_arc_set_when_enabled(arc_ctx, world, internet, db):
    sender_domain = world.domain("sender.test")
    with db.session() as s:
        key = s.scalar(select(DkimKey).where(DkimKey.domain_id == sender_domain))
        pem = decrypt(arc_ctx.settings.SECRET_KEY, key.private_key_enc)
    original = dkim.sign(ORIGINAL, key.selector.encode(), b"sender.test", pem) + ORIGINAL
    internet.dns.set("sender.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")  # the seeded peer
    internet.dns.set("_dmarc.sender.test", "TXT", "v=DMARC1; p=reject")
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    results = Authenticator(make_resolver(arc_ctx.settings), HOST).check(
        original, mail_from="alice@sender.test", peer_ip="198.51.100.7", helo="client.sender.test")

    run(arc_ctx, world.seed([route], raw=original, findings={"auth_results": results.to_json()}))

    [got] = sink.messages
    assert got.data.endswith(original)
    cv, _, reason = dkim.arc_verify(got.data, dnsfunc=Dns(make_resolver(arc_ctx.settings)))
    assert cv == dkim.CV_Pass, reason
    headers = dkim.rfc822_parse(got.data)[0]
    assert [k for k, _ in headers[:3]] == [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]
    aar = headers[2][1]
    for result in (b"spf=pass smtp.mailfrom=alice@sender.test", b"dkim=pass header.d=sender.test",
                   b"dmarc=pass header.from=sender.test"):
        assert result in aar, aar
    assert dkim_verifies(got.data, arc_ctx.settings, idx=0)  # ours, d=alias.test
    assert dkim_verifies(got.data, arc_ctx.settings, idx=1)  # the sender's


def test_a_message_spooled_without_results_is_signed_but_not_sealed(arc_ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(arc_ctx, world.seed([route], raw=ORIGINAL))  # spooled before the inbound checks existed

    [got] = sink.messages
    assert got.data.startswith(b"DKIM-Signature: ") and b"ARC-Seal" not in got.data
    assert b"Authentication-Results" not in got.data and got.data.endswith(ORIGINAL)
