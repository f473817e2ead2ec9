"""Our ARC set is dkimpy's, byte for byte, and a receiver (dkimpy against the loopback DNS) accepts it."""

from __future__ import annotations

import logging

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailferry.dkim_keys import SigningKey
from smtp.delivery.arc import arc_set
from smtp.delivery.arc_signing import SIGNED_HEADERS, arc_headers
from smtp.delivery.signing import SigningError, dkim_signature
from smtp.inbound.authentication import Authenticator, AuthResults, MethodResult
from tests.smtp.delivery.arc_keys import Dns, new_key, publish
from tests.smtp.delivery.test_arc import HOST, MESSAGE

NOW = 1795424400
_SILENT = logging.getLogger("tests.arc_signing.dkimpy")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False

HEAD = (b"From: Alice <alice@sender.test>\r\nTo: hello@alias.test\r\nSubject: hi\r\n"
        b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <a1@sender.test>\r\n")
FOLDED = (b"From: \"Alice  Sender\"\t <alice@sender.test>  \r\n"
          b"To: hello@alias.test,\r\n\t  other@alias.test \t\r\n"
          b"Subject: a long subject that goes on\r\n and on\r\n\tand on  \r\n"
          b"Cc:   \r\n"
          b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n"
          b"References: <a@x> <b@x>\r\n <c@x>\r\n"
          b"\r\nbody  with\t runs \r\n\r\n\r\n")
BODIES = {
    "simple": HEAD + b"\r\nHello.\r\n",
    "folded": FOLDED,
    "empty body": HEAD + b"\r\n",
    "no final CRLF": HEAD + b"\r\nno newline at the end  ",
    "100 KB": HEAD + b"\r\n" + b"".join(b"line %05d of a longer  body\t with runs \r\n" % n for n in range(2500)),
}
RESULTS = AuthResults(HOST, (
    MethodResult("spf", "pass", (("smtp.mailfrom", "alice@sender.test"),)),
    MethodResult("dkim", "pass", (("header.d", "sender.test"), ("header.s", "snd"))),
    MethodResult("dmarc", "pass", (("header.from", "sender.test"),)),
))


@pytest.fixture(scope="module")
def ours() -> SigningKey:
    return new_key("alias.test")


def dkimpys(data: bytes, key: SigningKey, results: AuthResults) -> bytes:
    headers, _ = dkim.rfc822_parse(data)
    present = {name.lower() for name, _ in headers}
    include = [h for h in SIGNED_HEADERS if h in present]
    return b"".join(dkim.arc_sign(data, key.selector.encode(), key.domain.encode(), key.private_pem,
                                  results.authserv_id.encode(), include_headers=include, timestamp=NOW,
                                  logger=_SILENT))


def received(message: bytes, results: AuthResults) -> bytes:
    return results.header() + b"Received: from mail.sender.test by mx.mailferry.test; Mon, 23 Nov 2026\r\n" + message


@pytest.mark.parametrize("message", BODIES.values(), ids=BODIES.keys())
def test_a_first_set_is_dkimpys(ours, message):
    data = received(message, RESULTS)
    mine = arc_headers(data, ours, RESULTS, now=NOW)
    assert mine == dkimpys(data, ours, RESULTS)
    assert mine.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=alias.test; s=s1; t=1795424400;")


@pytest.mark.parametrize("message", BODIES.values(), ids=BODIES.keys())
def test_a_first_set_verifies(resolver, dns_server, ours, message):
    publish(dns_server, ours)
    data = received(message, RESULTS)
    data = dkim_signature(data, ours, now=NOW) + data
    sealed = arc_headers(data, ours, RESULTS) + data
    cv, sets, reason = dkim.arc_verify(sealed, dnsfunc=Dns(resolver))
    assert cv == dkim.CV_Pass and len(sets) == 1, reason


def first_hop(resolver, dns_server, sender):
    """MESSAGE signed by the sender, then sealed (i=1) by another forwarder, mx.first.test."""
    key = new_key("first.test")
    publish(dns_server, key)
    signed = dkim_signature(MESSAGE, sender) + MESSAGE
    results = Authenticator(resolver, "mx.first.test").check(
        signed, mail_from="alice@sender.test", peer_ip="127.0.0.7", helo="mail.sender.test")
    hop = results.header() + signed
    return arc_set(hop, key, results) + hop


def test_an_intact_chain_is_extended_as_dkimpy_does(resolver, dns_server, sender, ours):
    publish(dns_server, ours)
    hop = first_hop(resolver, dns_server, sender)
    results = Authenticator(resolver, HOST).check(hop, mail_from="srs0=x@first.test", peer_ip="127.0.0.8",
                                                  helo="mx.first.test")
    assert results.result("arc") == "pass"
    data = received(hop, results)
    mine = arc_headers(data, ours, results, now=NOW)
    assert mine == dkimpys(data, ours, results)
    assert mine.startswith(b"ARC-Seal: i=2; cv=pass;")
    cv, sets, reason = dkim.arc_verify(mine + data, dnsfunc=Dns(resolver))
    assert cv == dkim.CV_Pass and len(sets) == 2, reason


def test_a_broken_chain_is_sealed_as_failed_as_dkimpy_does(resolver, dns_server, sender, ours):
    publish(dns_server, ours)
    hop = first_hop(resolver, dns_server, sender).replace(b"Subject: hi", b"Subject: changed")
    results = Authenticator(resolver, HOST).check(hop, mail_from="srs0=x@first.test", peer_ip="127.0.0.8",
                                                  helo="mx.first.test")
    assert results.result("arc") == "fail"
    data = received(hop, results)
    mine = arc_headers(data, ours, results, now=NOW)
    assert mine == dkimpys(data, ours, results)
    assert mine.startswith(b"ARC-Seal: i=2; cv=fail;")
    cv, sets, reason = dkim.arc_verify(mine + data, dnsfunc=Dns(resolver))
    # The chain ends there; our message signature holds. (dkimpy's verifier checks a cv=fail seal over the
    # whole chain, where RFC 8617 5.1.1 and dkimpy's signer seal only the failing hop's own set.)
    assert cv is None and sets[0]["instance"] == 2 and sets[0]["ams-valid"], reason


def test_the_time_is_now_unless_given(ours):
    data = received(BODIES["simple"], RESULTS)
    assert b"; t=1795424400;" not in arc_headers(data, ours, RESULTS)


@pytest.mark.parametrize("results, message, reason", [
    (RESULTS, MESSAGE.replace(b"From: Alice <alice@sender.test>\r\n", b""), "no From"),
    (AuthResults(HOST, (*RESULTS.results, MethodResult("arc", "pass"))), MESSAGE, "no ARC chain"),
])
def test_what_cannot_be_sealed(ours, results, message, reason):
    with pytest.raises(SigningError, match=reason):
        arc_headers(received(message, results), ours, results)
    assert arc_set(received(message, results), ours, results) == b""


def test_a_chain_without_an_arc_result_is_not_extended(resolver, dns_server, sender, ours):
    data = received(first_hop(resolver, dns_server, sender), RESULTS)
    with pytest.raises(SigningError, match="no arc= result"):
        arc_headers(data, ours, RESULTS)
    assert dkimpys(data, ours, RESULTS) == b""  # dkimpy ends the chain there too


def test_an_ed25519_key_behind_an_rsa_label_is_refused():
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key = SigningKey("alias.test", "ed", "rsa", pem)
    with pytest.raises(SigningError, match="RSA"):
        arc_headers(received(MESSAGE, RESULTS), key, RESULTS)
    assert arc_set(received(MESSAGE, RESULTS), key, RESULTS) == b""
