"""ARC (RFC 8617): seal what we saw at receipt with the alias domain's key.

A forward keeps the sender's From but leaves from our address, so the sender's SPF no longer aligns and
their DMARC rests on their DKIM signature alone. The ARC set carries our Authentication-Results, signed, to a
receiver that trusts us (Gmail and Microsoft evaluate ARC from forwarders). Off unless SMTP_ENABLE_ARC. The set
itself is built in arc_signing.py.
"""

from __future__ import annotations

import logging

import dkim

from mailferry.dkim_keys import SigningKey
from mailferry.logs import log

from .arc_signing import arc_headers
from .authentication import Authenticator, AuthResults, header_values

logger = logging.getLogger(__name__)


def claims_our_results(original: bytes, authserv_id: str) -> bool:
    """Whether the message arrived with an Authentication-Results header in our name (forged: RFC 8601 5)."""
    wanted = authserv_id.lower()
    for value in header_values(original, b"authentication-results"):
        claimed = value.decode("utf-8", "replace").split(";", 1)[0].strip().split()
        if claimed and claimed[0].lower() == wanted:
            return True
    return False


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


class Sealer:
    """Authentication results once per message (a pass sends several copies), and the seal per copy."""

    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator
        self._last: tuple[str, AuthResults | None] | None = None

    def results(self, message_id: str, raw: bytes, *, mail_from: str, peer_ip: str, helo: str) -> AuthResults | None:
        """None when the message arrived claiming results in our name: we neither repeat nor seal those."""
        if self._last is not None and self._last[0] == message_id:
            return self._last[1]
        results = None
        if claims_our_results(raw, self.authenticator.authserv_id):
            log(logger, logging.WARNING, "not sealed: the message carries Authentication-Results in our name",
                message_id=message_id)
        else:
            results = self.authenticator.check(raw, mail_from=mail_from, peer_ip=peer_ip, helo=helo)
        self._last = (message_id, results)
        return results
