"""DKIM signatures: dkimpy's parsing and canonicalisation, the signature itself through OpenSSL (cryptography).

dkimpy signs RSA in pure Python and needs PyNaCl for Ed25519; `cryptography` does both in C.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import lru_cache

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy, correct_empty_body, strip_trailing_lines

from mailferry.dkim_keys import SigningKey

CANONICALIZATION = b"relaxed/relaxed"  # survives the header refolding some hops do
ALGORITHM_TAGS = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}
_SIGNED = set(dkim.DKIM.SHOULD) | set(dkim.DKIM.FROZEN)
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")  # dkimpy's strip_trailing_whitespace
_WSP_TO_COMPRESS = re.compile(rb"\t[\t ]*| [\t ]+")  # the runs dkimpy's compress_whitespace changes


class SigningError(ValueError):
    """The message cannot be signed (no From header, a header block dkimpy cannot parse) or the key is unusable."""


def _include_headers(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    present = [name.lower() for name, _ in headers if name.lower() in _SIGNED]
    if b"from" not in present:
        raise SigningError("no From header to sign")
    # Every signed name once per occurrence, From once more so nobody can add a second one.
    return present + [b"from"]


@lru_cache(maxsize=512)
def load_private_key(pem: bytes):
    """Parsing (and validating) an RSA key costs far more than signing with it: once per key and process."""
    return serialization.load_pem_private_key(pem, password=None)


def _sign_digest(key: SigningKey, digest: bytes) -> bytes:
    private = load_private_key(key.private_pem)
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the signed data
    raise SigningError(f"unsupported DKIM key type {type(private).__name__}")


def parse(message: bytes) -> tuple[list, bytes]:
    """dkim.rfc822_parse's (headers, body), splitting only the header block into lines: dkimpy splits the whole
    message (0.8 ms for 100 KB) to find where the headers end. Anything but a CRLF-only message that has
    headers and a blank line after them goes to dkimpy as it is. A header block dkimpy cannot read (a line
    that is not a field: no colon, a NUL or 8-bit byte in the name) raises dkim.MessageFormatError."""
    end = message.find(b"\r\n\r\n")
    try:
        if end < 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
            return dkim.rfc822_parse(message)
        headers, _ = dkim.rfc822_parse(message[:end + 4])
    except IndexError:  # dkimpy appends a folded line to the field before it, even when there is none
        raise dkim.MessageFormatError("a continuation line before the first header field") from None
    return headers, message[end + 4:]


def relaxed_body(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalisation (RFC 6376 3.4.4), the same bytes out: only its whitespace step
    differs, rewriting runs that are not already one space instead of every run (a 100 KB text body has
    ~16,000 single spaces: 3 ms of regex substitution per message)."""
    if b" \r\n" in body or b"\t\r\n" in body:  # C scans first: most bodies need neither substitution
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"\t" in body or b"  " in body:
        body = _WSP_TO_COMPRESS.sub(b" ", body)
    return correct_empty_body(strip_trailing_lines(body))


def dkim_signature(message: bytes, key: SigningKey, now: int | None = None) -> bytes:
    """The `DKIM-Signature: ...\\r\\n` header line (folded, CRLF) to prepend to `message`."""
    algorithm = ALGORITHM_TAGS.get(key.algorithm)
    if algorithm is None:
        raise SigningError(f"unknown DKIM algorithm {key.algorithm!r}")
    try:
        headers, body = parse(message)
    except dkim.MessageFormatError as exc:  # no receiver's dkimpy could read the header block to verify it
        raise SigningError(str(exc)) from None
    include = _include_headers(headers)
    policy = CanonicalizationPolicy.from_c_value(CANONICALIZATION)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
    domain = key.domain.encode("ascii")
    fields = [
        (b"v", b"1"), (b"a", algorithm), (b"c", CANONICALIZATION), (b"d", domain),
        (b"s", key.selector.encode("ascii")), (b"t", str(int(now or time.time())).encode()),
        (b"h", b" : ".join(include)), (b"bh", body_hash), (b"b", b""),
    ]
    unsigned = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(b"DKIM-Signature"))
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers), include,
                      (b"DKIM-Signature", b" " + unsigned), dict(fields))
    signature = base64.b64encode(_sign_digest(key, hasher.digest()))
    fields[-1] = (b"b", signature)
    value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(b"DKIM-Signature"))
    return b"DKIM-Signature: " + value
