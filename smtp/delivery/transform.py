"""The forward transform: Received header, SRS envelope sender, DKIM signature.

Only header lines are prepended; the original header block and body are passed through as bytes,
so the sender's own DKIM signatures keep verifying at the destination.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from mailferry.dkim_keys import SigningKey

from .signing import dkim_signature

_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_UNSAFE = re.compile(r"[^\x21-\x7e]+")
LOOP_HEADER = "X-Mailferry-Loop"


@dataclass(frozen=True)
class Outbound:
    envelope_from: str
    data: bytes
    dkim_signed: bool


def crlf_only(data: bytes) -> bytes:
    """Every line ending as CRLF. Inbound refuses bare CR/LF, so for spooled mail this changes nothing;
    it guards the wire against anything that slipped through (smtplib fixes line endings only for str)."""
    pairs = data.count(b"\r\n")
    if data.count(b"\r") == pairs == data.count(b"\n"):  # three C scans instead of a regex pass per message
        return data
    return _BARE_EOL.sub(b"\r\n", data)


def _token(value: str, fallback: str) -> str:
    cleaned = _UNSAFE.sub("", value or "")[:255]
    return cleaned or fallback


def received_header(*, helo: str, peer: str, hostname: str, message_id: str, used_tls: bool,
                    received_at: datetime, recipient: str | None = None) -> bytes:
    """Our trace line (RFC 5321 4.4), folded, ending in CRLF."""
    when = format_datetime(received_at.replace(tzinfo=timezone.utc))
    protocol = "ESMTPS" if used_tls else "ESMTP"
    peer_ip = _token(peer, "unknown").rsplit(":", 1)[0] if peer.count(":") == 1 else _token(peer, "unknown")
    line = (f"Received: from {_token(helo, 'unknown')} ([{peer_ip}])\r\n"
            f"\tby {_token(hostname, 'localhost')} (Mailferry) with {protocol} id {message_id}")
    if recipient:
        line += f"\r\n\tfor <{_token(recipient, 'unknown')}>"
    return f"{line}; {when}\r\n".encode("ascii")


def loop_header(alias: str) -> bytes:
    """Our loop marker: inbound refuses a message that already went through the same alias (554 5.4.6)."""
    return f"{LOOP_HEADER}: <{_token(alias, 'unknown')}>\r\n".encode("ascii")


def forward(raw: bytes, *, envelope_from: str, received: bytes, key: SigningKey | None) -> Outbound:
    """Prepend `received` (our trace lines) and a DKIM-Signature over the result when a key is given."""
    data = received + crlf_only(raw)
    if key is None:
        return Outbound(envelope_from, data, False)
    try:
        signature = dkim_signature(data, key)
    except ValueError:  # SigningError, or a key cryptography cannot load
        return Outbound(envelope_from, data, False)
    return Outbound(envelope_from, signature + data, True)
