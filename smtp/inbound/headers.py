"""The header changes made to a message before it is spooled: results forged in our name removed (RFC 8601
5), X-Spam-* headers of ours instead of the sender's, and a Message-ID and Date when the sender sent none
(as Postfix's cleanup does: receivers score their absence, Gmail refuses mail without a Message-ID)."""

from __future__ import annotations

import re
from email.utils import formatdate

from smtp.from_rewrite import field_name, split_message

from .authentication import header_values

_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]")  # a field name and colon, or a folded line
SPAM_HEADERS = frozenset({"x-spam-flag", "x-spam-score", "x-spam-status", "x-spam", "x-spam-level"})


def signed_header_names(raw: bytes) -> set[str]:
    """Every header name some DKIM signature of the message covers (its h= tag)."""
    names: set[str] = set()
    for value in header_values(raw, b"dkim-signature"):
        text = value.decode("ascii", "replace").replace("\r\n", "")
        for tag in text.split(";"):
            key, _, listed = tag.strip().partition("=")
            if key.strip() == "h":
                names.update(n.strip().lower() for n in listed.split(":"))
    return names


def claims_our_results(field: bytes, authserv_id: str) -> bool:
    value = field.split(b":", 1)[1] if b":" in field else b""
    claimed = value.decode("utf-8", "replace").split(";", 1)[0].split()
    return bool(claimed) and claimed[0].lower() == authserv_id.lower()


def header_block(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, the rest) as a receiver reads them: a message that starts with a blank line, or with a
    line that is no header field, is all body. Fields added to it go before a blank line of their own, never
    into its text (split_message would take its first lines for the header section)."""
    if raw.startswith(b"\r\n"):
        return [], raw
    if not _FIELD_START.match(raw):
        return [], b"\r\n" + raw
    return split_message(raw)


def prepare(raw: bytes, *, authserv_id: str, message_id: str, hostname: str, spam_headers: bytes | None = None) -> bytes:
    """The message as it is spooled. `spam_headers` (when the message was scanned) replaces any X-Spam-* the
    sender wrote; None leaves them alone."""
    fields, rest = header_block(raw)
    kept = [f for f in fields
            if not (field_name(f) == "authentication-results" and claims_our_results(f, authserv_id))
            and not (spam_headers is not None and field_name(f) in SPAM_HEADERS)]
    present = {field_name(f) for f in kept}
    signed = signed_header_names(raw) if ("message-id" not in present or "date" not in present) else set()
    added = []
    if "message-id" not in present and "message-id" not in signed:
        added.append(f"Message-ID: <{message_id}@{hostname}>\r\n".encode("ascii", "replace"))
    if "date" not in present and "date" not in signed:
        added.append(f"Date: {formatdate(localtime=False, usegmt=True)}\r\n".encode("ascii"))
    if len(kept) == len(fields) and not added and not spam_headers:
        return raw
    return (spam_headers or b"") + b"".join(kept) + b"".join(added) + rest
