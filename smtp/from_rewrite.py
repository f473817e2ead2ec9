"""The `rewrite` sender policy: for relays that only send as their own account (Gmail), and for senders whose
DMARC policy is p=reject. From: becomes "Name via alias.domain" <account>; Reply-To: keeps replies going to the
original sender; X-Original-From: keeps what was there. Only the header block changes; the body is untouched."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.utils import formataddr, getaddresses

CRLF = b"\r\n"
# rspamd scores an address in the display name that is not the From address as spam (SPOOF_DISPLAY_NAME);
# the full-width and small at signs go too, since a reader takes them for an address all the same.
_AT_SIGN = re.compile(r"\s*[@\uff20\ufe6b]\s*")


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, each with its folded lines and CRLF; the rest: blank line + body)."""
    end = raw.find(b"\r\n\r\n")
    head, rest = (raw[: end + 2], raw[end + 2:]) if end >= 0 else (raw, b"")
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, rest


def field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def field_value(field: bytes) -> str:
    value = field.split(b":", 1)[1] if b":" in field else b""
    text = value.decode("utf-8", "replace").replace("\r\n", "").strip()
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # an undecodable encoded-word: keep the raw text
        return text


def from_addresses(raw: bytes) -> list[str]:
    """The addresses of the message's From fields, in order."""
    fields, _ = split_message(raw)
    values = [field_value(f) for f in fields if field_name(f) == "from"]
    return [address for _, address in getaddresses(values) if "@" in address]


def display_name(name: str, address: str, alias_address: str) -> str:
    """`Name via alias.domain`, the sender's address standing in for a missing name, with no @ anywhere:
    `alice at sender.test via alias.domain`."""
    sender = _AT_SIGN.sub(" at ", name or address).strip() or "unknown sender"
    return f"{sender} via {alias_address.rpartition('@')[2]}"


def rewrite_from(raw: bytes, *, account: str, alias_address: str) -> tuple[bytes, str]:
    """The message with its From rewritten, and the original sender address (for the envelope/Reply-To)."""
    fields, rest = split_message(raw)
    from_index = next((i for i, f in enumerate(fields) if field_name(f) == "from"), None)
    original = fields[from_index] if from_index is not None else b"From: \r\n"
    name, address = (getaddresses([field_value(original)]) or [("", "")])[0]
    display = display_name(name, address, alias_address)
    new_fields = [f for f in fields if field_name(f) not in ("from", "x-original-from")]
    added = [f"From: {formataddr((display, account))}".encode() + CRLF,
             b"X-Original-From:" + original.split(b":", 1)[1].rstrip(b"\r\n") + CRLF]
    if address and not any(field_name(f) == "reply-to" for f in fields):
        added.append(f"Reply-To: {formataddr((name, address))}".encode() + CRLF)
    position = from_index if from_index is not None else len(new_fields)
    new_fields[position:position] = added
    return b"".join(new_fields) + rest, address
