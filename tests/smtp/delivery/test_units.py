"""The pure parts: line endings, Received, DKIM signing (RSA and Ed25519), retry times, reply meanings, DSN."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy

from mailferry.dkim_keys import SigningKey
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED
from smtp.delivery.dsn import Failure, OriginalMessage, build_dsn, header_block
from smtp.delivery.outcome import Reply, classify, status_code
from smtp.delivery.retry import next_attempt
from smtp.delivery.signing import SigningError, dkim_signature
from smtp.delivery.transform import crlf_only, forward, received_header
from tests.smtp.delivery.conftest import ORIGINAL

T0 = datetime(2026, 11, 23, 9, 0, 0)


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_crlf_only_fixes_bare_cr_and_lf_and_leaves_crlf_alone():
    assert crlf_only(ORIGINAL) == ORIGINAL
    assert crlf_only(b"a\nb\rc\r\nd\n") == b"a\r\nb\r\nc\r\nd\r\n"
    assert crlf_only(b"a\n\rb") == b"a\r\n\r\nb"  # as many CR as LF, but not paired
    assert crlf_only(b"a\r\r\nb\n") == b"a\r\n\r\nb\r\n"


def test_received_header_is_one_folded_crlf_field():
    line = received_header(helo="client\r\nX-Injected: 1", peer="198.51.100.7:4242", hostname="mx.mf.test",
                           message_id="ABC", used_tls=True, received_at=T0, recipient="hello@alias.test")
    assert line.startswith(b"Received: from clientX-Injected:1 ([198.51.100.7])\r\n\tby mx.mf.test")
    assert b"with ESMTPS id ABC\r\n\tfor <hello@alias.test>; Mon, 23 Nov 2026 09:00:00 +0000\r\n" in line
    assert line.count(b"\r\n") == 3 and b"\n" not in line.replace(b"\r\n", b"")


def test_forward_prepends_only_and_never_emits_bare_line_endings():
    key = SigningKey("alias.test", "s1", "rsa", _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    out = forward(b"From: a@b.test\nSubject: x\n\nbody\n", envelope_from="srs@alias.test", received=b"Received: x\r\n",
                  key=key)
    assert out.dkim_signed and out.data.endswith(b"Received: x\r\nFrom: a@b.test\r\nSubject: x\r\n\r\nbody\r\n")
    assert b"\n" not in out.data.replace(b"\r\n", b"") and b"\r" not in out.data.replace(b"\r\n", b"")


def test_forward_without_a_from_header_goes_unsigned():
    key = SigningKey("alias.test", "s1", "rsa", _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    out = forward(b"Subject: x\r\n\r\nbody\r\n", envelope_from="", received=b"", key=key)
    assert not out.dkim_signed and out.data == b"Subject: x\r\n\r\nbody\r\n"
    with pytest.raises(SigningError):
        dkim_signature(b"Subject: x\r\n\r\nbody\r\n", key)


def test_rsa_signature_verifies_with_dkimpy():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signed = dkim_signature(ORIGINAL, SigningKey("alias.test", "s1", "rsa", _pem(private))) + ORIGINAL
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(signed.replace(b"Lunch", b"Dinner"), dnsfunc=lambda name, timeout=5: record)


def test_ed25519_signature_is_rfc8463():
    """dkimpy verifies Ed25519 only with PyNaCl, so check the signature against the RFC 8463 recipe directly."""
    private = ed25519.Ed25519PrivateKey.generate()
    header = dkim_signature(ORIGINAL, SigningKey("alias.test", "s2", "ed25519", _pem(private)))
    assert b"a=ed25519-sha256" in header
    fields = dict(f.strip().split("=", 1) for f in header.decode()[len("DKIM-Signature:"):].replace("\r\n", "").split(";"))
    signature = base64.b64decode(fields["b"].replace(" ", ""))
    headers, body = dkim.rfc822_parse(ORIGINAL)
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    assert fields["bh"] == base64.b64encode(hashlib.sha256(policy.canonicalize_body(body)).digest()).decode()
    hasher = hashlib.sha256()
    include = [h.strip().encode() for h in fields["h"].split(":")]
    dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers), include,
                      (b"DKIM-Signature", header[len(b"DKIM-Signature:"):]), {})
    private.public_key().verify(signature, hasher.digest())  # raises InvalidSignature when wrong


@pytest.mark.parametrize(("code", "text", "state", "status"), [
    (250, "2.0.0 OK", DELIVERED, "2.0.0"),
    (451, "4.7.1 greylisted", DEFERRED, "4.7.1"),
    (421, "service closing", DEFERRED, "4.0.0"),
    (None, "connection refused", DEFERRED, "4.4.1"),
    (550, "5.1.1 no such user", BOUNCED, "5.1.1"),
    (554, "rejected", BOUNCED, "5.0.0"),
])
def test_reply_meanings(code, text, state, status):
    assert classify(Reply(code, text)) == state
    assert status_code(Reply(code, text)) == status


def test_retry_schedule_repeats_its_last_step_and_stops_at_the_lifetime():
    schedule, lifetime = (60, 300, 900), 3600
    assert next_attempt(1, T0, T0, schedule, lifetime) == T0 + timedelta(seconds=60)
    assert next_attempt(3, T0, T0, schedule, lifetime) == T0 + timedelta(seconds=900)
    assert next_attempt(9, T0, T0, schedule, lifetime) == T0 + timedelta(seconds=900)
    late = T0 + timedelta(seconds=3000)
    assert next_attempt(9, late, T0, schedule, lifetime) == T0 + timedelta(seconds=3600)  # a last try at the end
    assert next_attempt(9, T0 + timedelta(seconds=3600), T0, schedule, lifetime) is None


def test_dsn_is_rfc3464_multipart_report_with_the_original_headers():
    original = OriginalMessage("MSGID1", "alice@sender.test", ORIGINAL, T0)
    failures = [Failure("hello@alias.test", "bob@dest.test", Reply(550, "5.1.1 <bob@dest.test> unknown"), "mx.dest.test")]
    data = build_dsn(original, failures, hostname="mx.mf.test", now=T0, dsn_id="DSN1")
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, _, _ = data.partition(b"\r\n\r\n")
    assert b"To: <alice@sender.test>" in head and b"Auto-Submitted: auto-replied" in head
    assert b"Content-Type: multipart/report; report-type=delivery-status" in head
    for line in (b"Reporting-MTA: dns; mx.mf.test", b"Final-Recipient: rfc822; hello@alias.test", b"Action: failed",
                 b"Status: 5.1.1", b"Remote-MTA: dns; mx.dest.test",
                 b"Diagnostic-Code: smtp; 550 5.1.1 <hello@alias.test> unknown"):
        assert line + b"\r\n" in data
    assert header_block(ORIGINAL) in data and b"leading dot line" not in data  # headers only, no body
    assert b"bob@dest.test" not in data
