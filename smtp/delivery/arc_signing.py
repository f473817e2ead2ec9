"""ARC sets (RFC 8617) the way dkimpy's ARC.sign builds them, the RSA signatures through OpenSSL (cryptography).

The same bytes as dkim.arc_sign for the same message, key, results and time: dkimpy's folding, header
selection and relaxed canonicalisation, with our parse and body canonicalisation (signing.py) and
OpenSSL instead of dkimpy's pure-Python RSA (two signatures per set).
"""

from __future__ import annotations

import base64
import hashlib
import time

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from mailferry.dkim_keys import SigningKey
from smtp.inbound.authentication import AuthResults

from .signing import SigningError, load_private_key, parse, relaxed_body

# What the ARC-Message-Signature covers, those present (dkimpy refuses trace headers and DKIM-Signature here).
SIGNED_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to",
                  b"references", b"mime-version", b"content-type", b"content-transfer-encoding")
INSTANCE_LIMIT = 50
_ARC_HEADERS = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_ALGORITHM = b"rsa-sha256"  # the only one RFC 8617 defines
_B_PLACEHOLDER = b"0" * 60  # dkimpy's: b= folds onto its own line, so adding the signature moves no other tag


def existing_sets(canonical: list) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The highest instance number and the ARC header fields already on the message, newest first, in
    dkimpy's order (ARC.sorted_arc_headers: instance, name, value, all descending)."""
    found = []
    for name, value in canonical:
        if name in _ARC_HEADERS:
            match = dkim.ARC.INSTANCE_RE.search(value)
            if match is not None:
                found.append((int(match.group(1)), (name, value)))
    if not found:
        return 0, []
    found.sort(key=lambda a: [a[0], a[1][0].lower(), a[1][1].lower()], reverse=True)
    return found[0][0], [field for _, field in found]


def chain_validation(results: AuthResults) -> bytes:
    """cv= from our own arc= result: none without one, fail when there are several."""
    arc = [r for r in results.results if r.method == "arc"]
    if not arc:
        return b"none"
    return arc[0].result.lower().encode("ascii", "replace") if len(arc) == 1 else b"fail"


def _rsa_signature(key: SigningKey, digest: bytes) -> bytes:
    private = load_private_key(key.private_pem)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise SigningError(f"ARC needs an RSA key, not {type(private).__name__}")
    return private.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def _signed_field(name: bytes, fields: list[tuple[bytes, bytes]], headers: list, include: list[bytes],
                  key: SigningKey) -> bytes:
    """DomainSigner.gen_header: the folded value (CRLF) of a header field signing `include` of `headers`."""
    unsigned = dkim.RE_BTAG.sub(b"\\1", dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(name)))
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, _RELAXED, headers, include, (name, b" " + unsigned), dict(fields))
    fields = [(tag, base64.b64encode(_rsa_signature(key, hasher.digest())) if tag == b"b" else value)
              for tag, value in fields]
    return dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(name))


def arc_headers(data: bytes, key: SigningKey, results: AuthResults, now: int | None = None) -> bytes:
    """ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results (in that order, CRLF) to prepend to
    `data`, which starts with `results.header()`. Raises SigningError when the message cannot be sealed."""
    headers, body = parse(data)
    canonical = _RELAXED.canonicalize_headers(headers)
    present = {name for name, _ in canonical}
    include = [h for h in SIGNED_HEADERS if h in present]
    if b"from" not in include:
        raise SigningError("no From header to sign")
    cv = chain_validation(results)
    newest, previous = existing_sets(canonical)
    instance = newest + 1
    if instance > INSTANCE_LIMIT:
        raise SigningError(f"the ARC chain already has {newest} sets")
    if instance == 1 and cv != b"none":
        raise SigningError(f"cv={cv.decode()} but the message carries no ARC chain")
    if instance > 1 and cv == b"none":
        raise SigningError("the message carries an ARC chain but no arc= result")
    if cv == b"fail":  # a failed chain is not carried on: the seal covers only our own set
        previous = []

    i = str(instance).encode("ascii")
    authserv_id = results.authserv_id.encode("ascii")
    lines = [authserv_id, *(r.text().encode("utf-8", "replace") for r in results.results)]
    aar = b"i=" + i + b"; " + b";\r\n ".join(lines).rstrip() + b"\r\n"
    [aar_field] = _RELAXED.canonicalize_headers([(b"ARC-Authentication-Results", aar)])

    timestamp = str(now or int(time.time())).encode("ascii")
    domain, selector = key.domain.encode("ascii"), key.selector.encode("ascii")
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
    ams = _signed_field(b"ARC-Message-Signature", [
        (b"i", i), (b"a", _ALGORITHM), (b"c", b"relaxed/relaxed"), (b"d", domain), (b"s", selector),
        (b"t", timestamp), (b"h", b" : ".join(include)), (b"bh", body_hash), (b"b", _B_PLACEHOLDER),
    ], [aar_field, *canonical], include, key)
    [ams_field] = _RELAXED.canonicalize_headers([(b"ARC-Message-Signature", ams)])

    # Every ARC field of the chain oldest first, ours last; hash_headers picks each from the bottom up, so
    # for a failed chain the list is reversed to pick our new set (at the top) instead.
    sealed = [ams_field, aar_field, *previous]
    seal_headers = [ams_field, aar_field, *canonical]
    if cv == b"fail":
        seal_headers.reverse()
    seal = _signed_field(b"ARC-Seal", [
        (b"i", i), (b"cv", cv), (b"a", _ALGORITHM), (b"d", domain), (b"s", selector), (b"t", timestamp),
        (b"b", _B_PLACEHOLDER),
    ], seal_headers, [name for name, _ in reversed(sealed)], key)
    return b"ARC-Seal: " + seal + b"ARC-Message-Signature: " + ams + b"ARC-Authentication-Results: " + aar
