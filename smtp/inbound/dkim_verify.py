"""Verifying a DKIM signature of an inbound message: dkimpy's rules, the RSA/Ed25519 arithmetic through OpenSSL.

dkimpy verifies RSA in pure Python (0.5 ms for a 2048-bit key), parses the whole message again for every
signature, and needs PyNaCl (not installed) for Ed25519. Here the message is parsed once (`Message`, the
header block only: `signing.parse`), the canonical bodies are hashed once per message and algorithm, the parsed
public keys are cached per (selector, domain, TXT value), and the signature check is `cryptography`'s.

Everything else is dkimpy's own code, called the way `dkim.DKIM.verify` calls it: `parse_tag_value`,
`validate_signature_fields` (t=/x=, base64, i= against d=), `CanonicalizationPolicy`, `hash_headers`. The fast
path takes only rsa-sha256 and ed25519-sha256 without l=, and keys with nothing unusual in them (k= rsa or
ed25519, s= absent, * or email, a well-formed p=); anything else goes to `dkim.DKIM(raw).verify(idx=...)`, so
the result is dkimpy's. tests/smtp/inbound/test_dkim_verify.py compares the two on a corpus.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError, Relaxed
from dkim.crypto import UnparsableKeyError, parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from smtp.delivery.signing import parse, relaxed_body

MIN_KEY_BITS = 1024  # dkimpy's default minkey: a smaller RSA key never verifies
FAST_ALGORITHMS = (b"rsa-sha256", b"ed25519-sha256")  # both hash with SHA-256; anything else goes to dkimpy
_WSP = re.compile(rb"\s+")
_H_SEPARATOR = re.compile(rb"\s*:\s*")

TxtLookup = Callable[..., bytes]  # dkimpy's dnsfunc: (name: bytes, timeout=...) -> the TXT record or b""


@dataclass
class Message:
    """A message as dkimpy sees it (`rfc822_parse`'s headers and body), parsed once and shared by the checks."""

    raw: bytes
    headers: list
    body: bytes
    _bodies: dict = field(default_factory=dict, repr=False)  # body algorithm -> SHA-256 of the canonical body
    _headers: dict = field(default_factory=dict, repr=False)  # header algorithm -> canonical headers

    @classmethod
    def parse(cls, raw: bytes) -> Message:
        headers, body = parse(raw)
        return cls(raw, headers, body)

    def values(self, name: bytes) -> list[bytes]:
        """The values of the header fields called `name` (lower case), in order."""
        return [value for key, value in self.headers if key.lower() == name]

    def body_hash(self, algorithm) -> bytes:
        digest = self._bodies.get(algorithm)
        if digest is None:
            body = relaxed_body(self.body) if algorithm is Relaxed else algorithm.canonicalize_body(self.body)
            digest = self._bodies[algorithm] = hashlib.sha256(body).digest()
        return digest

    def canonical_headers(self, algorithm) -> list:
        found = self._headers.get(algorithm)
        if found is None:
            found = self._headers[algorithm] = algorithm.canonicalize_headers(self.headers)
        return found


@dataclass(frozen=True)
class PublicKey:
    kind: bytes  # b"rsa" | b"ed25519"
    key: object  # cryptography's public key
    bits: int
    length: int = 0  # RSA: bytes of the modulus, the length OpenSSL wants the signature in
    modulus: int = 0


@lru_cache(maxsize=2048)
def public_key(selector: bytes, domain: bytes, record: bytes) -> PublicKey | None:
    """The key a DKIM key record publishes, or None when anything about it is unusual (dkimpy decides)."""
    del selector, domain  # part of the cache key only: the same record under another name is another entry
    try:
        tags = parse_tag_value(record)
    except InvalidTagValueList:
        return None
    kind = tags.get(b"k", b"rsa")
    if tags.get(b"v", b"DKIM1") != b"DKIM1" or tags.get(b"s", b"*") not in (b"*", b"email") or not tags.get(b"p"):
        return None
    try:
        data = base64.b64decode(tags[b"p"])  # not validating, as dkimpy (and PyNaCl's Base64Encoder) decode it
        if kind == b"rsa":
            parsed = parse_public_key(data)
            modulus, exponent = parsed["modulus"], parsed["publicExponent"]
            key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            bits = dkim.bitsize(modulus)
            return PublicKey(kind, key, bits, (bits + 7) // 8, modulus)
        if kind == b"ed25519" and len(data) == 32:
            return PublicKey(kind, ed25519.Ed25519PublicKey.from_public_bytes(data), 256)
    except (ValueError, TypeError, UnparsableKeyError, IndexError):
        return None
    return None


class Unusual(Exception):
    """This signature is one for dkimpy to verify."""


def verify(message: Message, index: int, lookup: TxtLookup, *, logger: logging.Logger | None = None) -> bool:
    """What `dkim.DKIM(message.raw).verify(idx=index, dnsfunc=lookup)` returns (raising its DKIMExceptions)."""
    try:
        return _verify(message, index, lookup)
    except Unusual:
        return dkim.DKIM(message.raw, logger=logger).verify(idx=index, dnsfunc=lookup)


def _verify(message: Message, index: int, lookup: TxtLookup) -> bool:
    signatures = [(name, value) for name, value in message.headers if name.lower() == b"dkim-signature"]
    if len(signatures) <= index:
        return False
    sig_header = signatures[index]
    try:
        sig = parse_tag_value(sig_header[1])
    except InvalidTagValueList as exc:
        raise dkim.MessageFormatError(exc) from None
    dkim.validate_signature_fields(sig)
    if sig[b"a"] not in FAST_ALGORITHMS or b"l" in sig:
        raise Unusual
    include = [h.lower() for h in _H_SEPARATOR.split(sig[b"h"])]

    record = lookup(sig[b"s"] + b"._domainkey." + sig[b"d"] + b".")
    if not record:
        return False  # dkimpy: KeyFormatError("missing public key"), caught, False
    key = public_key(sig[b"s"], sig[b"d"], record)
    if key is None:
        raise Unusual

    try:
        policy = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError as exc:
        raise dkim.MessageFormatError(f"invalid c= value: {exc.args[0]}") from None
    if message.body_hash(policy.body_algorithm) != base64.b64decode(_WSP.sub(b"", sig[b"bh"])):
        return False  # dkimpy: ValidationError("body hash mismatch")

    if b"from" in include:
        include.append(b"from")  # dkimpy: any extra From breaks the signature (bug #644046)
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, policy, message.canonical_headers(policy.header_algorithm), include, sig_header, sig)
    signature = base64.b64decode(_WSP.sub(b"", sig[b"b"]))
    return _signature_valid(key, hasher.digest(), signature)


def _signature_valid(key: PublicKey, digest: bytes, signature: bytes) -> bool:
    if key.kind == b"ed25519":
        if len(signature) != 64:
            return False
        try:
            key.key.verify(signature, digest)  # RFC 8463: Ed25519 over the SHA-256 of the signed data
        except InvalidSignature:
            return False
        return True
    if key.bits < MIN_KEY_BITS:
        return False  # dkimpy: False, or KeyFormatError ("public key too small", "digest too large")
    number = int.from_bytes(signature, "big")
    if number >= key.modulus:
        return False  # RFC 8017 5.2.2: a signature representative out of range is invalid (OpenSSL's answer too)
    try:
        # dkimpy reads the signature as an integer: leading zero bytes, or too few, make no difference to it.
        key.key.verify(number.to_bytes(key.length, "big"), digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
