"""Our DKIM verifier (smtp/inbound/dkim_verify.py) says pass exactly when dkimpy does, on a corpus of good and
broken signatures whose keys are published on the loopback DNS server.

dkimpy needs PyNaCl for Ed25519, which is not installed: for the reference it gets a stand-in backed by
`cryptography`, so its own key parsing, canonicalisation and hashing are what the Ed25519 results come from.
"""

from __future__ import annotations

import base64
import hashlib
import time
import types

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from harness.settings import make_settings
from mailferry.dkim_keys import SigningKey
from mailferry.resolver import make_resolver
from smtp.delivery.signing import dkim_signature
from smtp.inbound import dkim_verify
from smtp.inbound.authentication import _TxtLookup

MESSAGE = (b"From: Alice <alice@sender.test>\r\nTo: hello@alias.test,\r\n  \tbob@alias.test\r\n"
           b"Subject: a folded\r\n   subject   line\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
           b"Message-ID: <a1@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
           b"Hello,  world. \r\n\r\nA second\tparagraph.\r\n\r\n\r\n")
HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


class _BadSignature(Exception):
    pass


class _NaclValueError(ValueError):
    pass


class _VerifyKey:
    """PyNaCl's VerifyKey, as far as dkimpy uses it."""

    def __init__(self, key: bytes, encoder):
        data = encoder.decode(key)
        if len(data) != 32:
            raise _NaclValueError("The key must be exactly 32 bytes long")
        self.key = ed25519.Ed25519PublicKey.from_public_bytes(data)

    def verify(self, smessage: bytes, signature: bytes):
        if len(signature) != 64:
            raise _NaclValueError("The signature must be exactly 64 bytes long")
        try:
            self.key.verify(signature, smessage)
        except InvalidSignature:
            raise _BadSignature from None
        return smessage


NACL = types.SimpleNamespace(
    signing=types.SimpleNamespace(VerifyKey=_VerifyKey),
    encoding=types.SimpleNamespace(Base64Encoder=types.SimpleNamespace(decode=base64.b64decode)),
    exceptions=types.SimpleNamespace(ValueError=_NaclValueError, BadSignatureError=_BadSignature))


def rsa_key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def record(private, **tags) -> str:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        fields = {"v": "DKIM1", "k": "ed25519", "p": base64.b64encode(raw).decode()}
    else:
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        fields = {"v": "DKIM1", "k": "rsa", "p": base64.b64encode(der).decode()}
    fields.update(tags)
    return "; ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def sign(message: bytes, private, selector: str, *, c: bytes = b"relaxed/relaxed", h=HEADERS, a: bytes | None = None,
         extra=(), domain: bytes = b"sender.test") -> bytes:
    """A DKIM-Signature with any tags, through dkimpy's own canonicalisation and header hashing."""
    ed = isinstance(private, ed25519.Ed25519PrivateKey)
    a = a or (b"ed25519-sha256" if ed else b"rsa-sha256")
    hash_name = hashlib.sha1 if a == b"rsa-sha1" else hashlib.sha256
    headers, body = dkim.rfc822_parse(message)
    policy = dkim.CanonicalizationPolicy.from_c_value(c)
    body = policy.canonicalize_body(body)
    extra = list(extra)
    length = dict(extra).get(b"l")
    if length is not None:
        body = body[:int(length)]
    fields = [(b"v", b"1"), (b"a", a), (b"c", c), (b"d", domain), (b"s", selector.encode()),
              (b"t", str(int(time.time())).encode()), *extra, (b"h", b":".join(h)),
              (b"bh", base64.b64encode(hash_name(body).digest())), (b"b", b"")]
    unsigned = b"; ".join(b"=".join(f) for f in fields)  # unfolded: simple/ hashes it as it stands
    hasher = hash_name()
    include = list(h) + ([b"from"] if b"from" in h else [])
    dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers), include,
                      (b"DKIM-Signature", b" " + unsigned), dict(fields))
    if ed:
        signature = private.sign(hasher.digest())
    else:
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
        algorithm = hashes.SHA1() if a == b"rsa-sha1" else hashes.SHA256()
        signature = private.sign(hasher.digest(), padding.PKCS1v15(), Prehashed(algorithm))
    fields[-1] = (b"b", base64.b64encode(signature))
    return b"DKIM-Signature: " + b"; ".join(b"=".join(f) for f in fields) + b"\r\n"


def pem(private) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa_key(), "rsa2": rsa_key(), "small": rsa_key(1024), "ed": ed25519.Ed25519PrivateKey.generate(),
            "ed2": ed25519.Ed25519PrivateKey.generate()}


def corpus(keys):
    """(name, message, published records, expected results by signature, whether dkimpy is left out)."""
    rsa1, ed = keys["rsa"], keys["ed"]
    good = {"rsa": record(rsa1), "ed": record(ed)}
    ours_rsa = dkim_signature(MESSAGE, SigningKey("sender.test", "rsa", "rsa", pem(rsa1)))
    ours_ed = dkim_signature(MESSAGE, SigningKey("sender.test", "ed", "ed25519", pem(ed)))
    rr = sign(MESSAGE, rsa1, "rsa")
    future = str(int(time.time()) - 3 * 86400).encode()
    cases = [
        ("signing.py rsa relaxed/relaxed", ours_rsa + MESSAGE, good, [True], True),
        ("signing.py ed25519 relaxed/relaxed", ours_ed + MESSAGE, good, [True], True),
        ("rsa relaxed/simple", sign(MESSAGE, rsa1, "rsa", c=b"relaxed/simple") + MESSAGE, good, [True], True),
        ("rsa simple/simple", sign(MESSAGE, rsa1, "rsa", c=b"simple/simple") + MESSAGE, good, [True], True),
        ("rsa simple (c= absent)", sign(MESSAGE, rsa1, "rsa", c=b"simple") + MESSAGE, good, [True], True),
        ("ed25519 simple/relaxed", sign(MESSAGE, ed, "ed", c=b"simple/relaxed") + MESSAGE, good, [True], True),
        ("several signatures", ours_ed + sign(MESSAGE, rsa1, "rsa", c=b"simple/simple") + ours_rsa + MESSAGE,
         good, [True, True, True], True),
        ("h= lists absent headers",
         sign(MESSAGE, rsa1, "rsa", h=[b"from", b"reply-to", b"cc", b"subject", b"in-reply-to"]) + MESSAGE,
         good, [True], True),
        ("oversigned From", sign(MESSAGE, rsa1, "rsa", h=[b"from", b"from", b"subject"]) + MESSAGE, good, [True],
         True),
        ("a second From added", rr + MESSAGE.replace(b"To:", b"From: mallory@evil.test\r\nTo:"), good, [False],
         True),
        ("refolded header, relaxed", rr + MESSAGE.replace(b"a folded\r\n   subject", b"a  folded subject"), good,
         [True], True),
        ("body changed", rr + MESSAGE.replace(b"world", b"World"), good, [False], True),
        ("body changed, simple", sign(MESSAGE, rsa1, "rsa", c=b"simple/simple") + MESSAGE + b"more\r\n", good,
         [False], True),
        ("signed header changed", rr + MESSAGE.replace(b"subject   line", b"subject   lines"), good, [False], True),
        ("unsigned header added", rr + b"X-Extra: yes\r\n" + MESSAGE, good, [True], True),
        ("ed25519 body changed", ours_ed + MESSAGE.replace(b"second", b"third"), good, [False], True),
        ("wrong rsa key", rr + MESSAGE, {"rsa": record(keys["rsa2"])}, [False], True),
        ("wrong ed25519 key", ours_ed + MESSAGE, {"ed": record(keys["ed2"])}, [False], True),
        ("rsa key for an ed25519 signature", ours_ed + MESSAGE, {"ed": record(rsa1)}, [False], True),
        ("key revoked (p=)", rr + MESSAGE, {"rsa": record(rsa1, p="")}, [False], False),
        ("no key record", rr + MESSAGE, {}, [False], True),
        ("key record with a bad version", rr + MESSAGE, {"rsa": record(rsa1, v="DKIM2")}, [False], False),
        ("key for another service", rr + MESSAGE, {"rsa": record(rsa1, s="tlsrpt")}, [False], False),
        ("key without k=", rr + MESSAGE, {"rsa": record(rsa1, k=None)}, [True], True),
        ("key with bad base64", rr + MESSAGE, {"rsa": record(rsa1)[:-3]}, [False], False),
        ("key with junk in its base64", rr + MESSAGE, {"rsa": record(rsa1).replace("p=", "p=@@")}, [True], True),
        ("1024-bit key", sign(MESSAGE, keys["small"], "rsa") + MESSAGE, {"rsa": record(keys["small"])}, [True],
         True),
        ("expired x=", sign(MESSAGE, rsa1, "rsa", extra=[(b"x", future)]) + MESSAGE, good, [False], True),
        ("x= in the future", sign(MESSAGE, rsa1, "rsa", extra=[(b"x", str(int(time.time()) + 86400).encode())])
         + MESSAGE, good, [True], True),
        ("t= far in the future", rr.replace(b"t=", b"t=9") + MESSAGE, good, [False], True),
        ("bad base64 in b=", rr.replace(b"b=", b"b=!!") + MESSAGE, good, [False], True),
        ("b= not a multiple of 4", rr.replace(b"b=", b"b=A") + MESSAGE, good, [False], True),
        ("b= of another signature", rr.split(b"b=")[0] + b"b=" + ours_rsa.split(b" b=")[-1].split(b"b=")[-1]
         + MESSAGE, good, [False], True),
        ("malformed tags", b"DKIM-Signature: v=1; a=rsa-sha256; d\r\n" + MESSAGE, good, [False], True),
        ("i= outside d=", sign(MESSAGE, rsa1, "rsa", extra=[(b"i", b"@other.test")]) + MESSAGE, good, [False],
         True),
        ("l= tag", sign(MESSAGE, rsa1, "rsa", extra=[(b"l", b"10")]) + MESSAGE + b"appended\r\n", good, [True],
         False),
        ("rsa-sha1", sign(MESSAGE, rsa1, "rsa", a=b"rsa-sha1") + MESSAGE, good, [True], False),
        ("unknown algorithm", rr.replace(b"a=rsa-sha256", b"a=rsa-sha512") + MESSAGE, good, [False], True),
        ("unknown canonicalisation", rr.replace(b"c=relaxed/relaxed", b"c=relaxed/fancy") + MESSAGE, good,
         [False], True),
        ("LF line endings", (rr + MESSAGE).replace(b"\r\n", b"\n"), good, [True], True),
    ]
    return cases


def results(message: bytes, lookup_factory, verifier) -> list[bool | str]:
    out = []
    for index in range(len(dkim_verify.Message.parse(message).values(b"dkim-signature"))):
        try:
            out.append(verifier(message, index, lookup_factory()))
        except dkim.DKIMException:
            out.append(False)
    return out


def test_same_results_as_dkimpy(dns_server, keys, monkeypatch):
    resolver = make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1))

    def ours(message, index, lookup):
        return dkim_verify.verify(dkim_verify.Message.parse(message), index, lookup)

    def dkimpy(message, index, lookup):
        return dkim.DKIM(message).verify(idx=index, dnsfunc=lookup)

    checked = []
    for name, message, records, expected, fast in corpus(keys):
        dns_server.clear()
        for selector, text in records.items():
            dns_server.set(f"{selector}._domainkey.sender.test", "TXT", text)
        with monkeypatch.context() as m:
            m.setattr(dkim, "nacl", NACL, raising=False)
            reference = results(message, lambda: _TxtLookup(resolver), dkimpy)
        assert reference == expected, f"{name}: dkimpy says {reference}"
        with monkeypatch.context() as m:
            if fast:  # the fast path decides alone: dkimpy's verifier is not called
                m.setattr(dkim.DKIM, "verify", lambda *a, name=name, **k: pytest.fail(f"{name}: went to dkimpy"))
            assert results(message, lambda: _TxtLookup(resolver), ours) == reference, name
        checked.append(name)
    assert len(checked) >= 30


def test_public_keys_are_cached_per_record(keys):
    text = record(keys["rsa"]).encode()
    first = dkim_verify.public_key(b"rsa", b"sender.test", text)
    assert first is dkim_verify.public_key(b"rsa", b"sender.test", text)
    assert first is not dkim_verify.public_key(b"rsa", b"sender.test", record(keys["rsa2"]).encode())
    assert dkim_verify.public_key(b"rsa", b"sender.test", b"v=DKIM1; k=rsa; p=") is None


def test_message_is_parsed_once_for_every_signature(dns_server, keys, monkeypatch):
    """Three signatures, one parse: dkimpy's parser of the whole message is not called at all."""
    from smtp.inbound.authentication import Authenticator

    rsa1, ed = keys["rsa"], keys["ed"]
    dns_server.set("rsa._domainkey.sender.test", "TXT", record(rsa1))
    dns_server.set("ed._domainkey.sender.test", "TXT", record(ed))
    message = (dkim_signature(MESSAGE, SigningKey("sender.test", "ed", "ed25519", pem(ed)))
               + sign(MESSAGE, rsa1, "rsa", c=b"simple/simple") + sign(MESSAGE, rsa1, "rsa") + MESSAGE)
    calls = []
    original = dkim.rfc822_parse
    monkeypatch.setattr(dkim, "rfc822_parse", lambda raw: calls.append(len(raw)) or original(raw))
    resolver = make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1))
    auth = Authenticator(resolver, "mx.test").check(message, mail_from="", peer_ip="127.0.0.1", helo="x")
    assert [r.result for r in auth.results if r.method == "dkim"] == ["pass", "pass", "pass"]
    assert all(size < len(message) - len(b"Hello") for size in calls)  # header blocks only, never the body
