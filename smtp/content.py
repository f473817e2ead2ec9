"""Checks on the raw bytes of a message at the end of DATA, before it is spooled."""

from __future__ import annotations

import re

from . import replies

LOOP_HEADER = "X-Mailferry-Loop"  # added per forwarding hop with the alias address (smtp/delivery/transform.py)
HEADER_LIMIT = 1 << 20  # a header section is never searched past this: the loop check stays cheap
_LOOP_MARKER = re.compile(rb"^x-mailferry-loop[ \t]*:[ \t]*<?([^\r\n<>]*?)>?[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


def has_bare_line_ending(raw: bytes) -> bool:
    """True when a CR or LF appears anywhere but in a CRLF pair.

    aiosmtpd splits DATA on CRLF only, so a lone LF reaches the content unchanged; a downstream MTA that
    accepts LF as a line end would read "\\n.\\n" as end-of-data and a second, smuggled message after it.
    """
    crlf = raw.count(b"\r\n")
    return raw.count(b"\r") != crlf or raw.count(b"\n") != crlf


def header_section(raw: bytes) -> bytes:
    """The header lines (each with its CRLF); at most HEADER_LIMIT bytes, like Postfix's header_size_limit."""
    if raw.startswith(b"\r\n"):
        return b""
    end = raw.find(b"\r\n\r\n", 0, HEADER_LIMIT)
    return raw[: end + 2] if end >= 0 else raw[:HEADER_LIMIT]


def received_count(raw: bytes) -> int:
    return len(_RECEIVED.findall(header_section(raw)))


def loop_markers(raw: bytes) -> set[str]:
    """Alias addresses this message was already forwarded through, lower-case."""
    return {m.decode("utf-8", "replace").strip().lower() for m in _LOOP_MARKER.findall(header_section(raw))}


def check_content(raw: bytes, max_received: int) -> str | None:
    """The refusal reply for a message that must not be accepted, or None when it may be spooled.

    Bare CR/LF is refused earlier, while DATA is read (data_reader), chunk by chunk.
    """
    if received_count(raw) > max_received:
        return replies.MAIL_LOOP
    return None
