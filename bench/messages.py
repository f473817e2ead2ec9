"""Realistic test messages: ordinary headers, a text body padded to the wanted size, a send-time stamp."""

from __future__ import annotations

import re
import time

SENT_HEADER = b"X-Bench-Sent"
_STAMP = re.compile(rb"(?:^|\n)X-Bench-Sent:[ \t]*([0-9]+\.[0-9]+)", re.IGNORECASE)
_FILLER = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incid"  # 84 octets


def stamp_line(sent: float | None = None) -> bytes:
    """The X-Bench-Sent header line to put in front of a message just before its transaction starts."""
    return b"%s: %.6f\r\n" % (SENT_HEADER, time.time() if sent is None else sent)


def message(size: int, sender: str, recipient: str, seq: int) -> bytes:
    """About `size` octets of CRLF mail (without the X-Bench-Sent line, see stamp_line)."""
    stamp = time.time()
    head = (
        f"From: Bench Sender <{sender}>\r\n"
        f"To: <{recipient}>\r\n"
        f"Subject: bench message {seq}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(stamp))}\r\n"
        f"Message-ID: <bench.{seq}.{stamp:.6f}@loadgen.bench.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    body = bytearray()
    line = 0
    while len(head) + len(body) + len(_FILLER) + 32 < size:
        body += b"%04d " % (line % 10000) + _FILLER[:-1] + b"\r\n"
        line += 1
    body += b"end\r\n"
    return head + bytes(body)


def sent_at(raw: bytes) -> float | None:
    """The X-Bench-Sent stamp of a (possibly re-signed) message: the header line, not a DKIM h= mention of it."""
    end = raw.find(b"\r\n\r\n")
    found = _STAMP.search(raw if end < 0 else raw[:end + 2])
    return float(found.group(1)) if found else None
