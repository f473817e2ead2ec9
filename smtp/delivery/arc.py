"""ARC (RFC 8617): seal what we saw at receipt with the alias domain's key.

A forward keeps the sender's From but leaves from our address, so the sender's SPF no longer aligns and
their DMARC rests on their DKIM signature alone. The ARC set carries our Authentication-Results (found at
receipt by smtp/inbound, stored with the message), signed, to a receiver that trusts us (Gmail and Microsoft
evaluate ARC from forwarders). On unless SMTP_ENABLE_ARC=false. The set itself is built in arc_signing.py.
"""

from __future__ import annotations

import logging

import dkim

from mailferry.dkim_keys import SigningKey
from mailferry.logs import log
from smtp.inbound.authentication import AuthResults

from .arc_signing import arc_headers

logger = logging.getLogger(__name__)


def arc_set(data: bytes, key: SigningKey, results: AuthResults, message_id: str = "") -> bytes:
    """The ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results lines to prepend to `data`, which
    must start with `results.header()`; b"" when the message cannot be sealed (the reason is logged)."""
    if key.algorithm != "rsa":  # RFC 8617 defines rsa-sha256 only
        log(logger, logging.DEBUG, "not sealed: ARC needs an RSA key", message_id=message_id, domain=key.domain)
        return b""
    try:
        return arc_headers(data, key, results)
    except (dkim.DKIMException, ValueError) as exc:  # an unparseable header block, SigningError, a bad key
        log(logger, logging.WARNING, "not sealed", message_id=message_id, domain=key.domain, error=str(exc))
        return b""
