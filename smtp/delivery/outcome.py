"""What an SMTP reply (or the lack of one) means for a destination."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Reply:
    """A server's reply; code None means there was none (refused, timed out, dropped, DNS failure)."""

    code: int | None
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text


def classify(reply: Reply) -> str:
    """2xx delivered, 5xx bounced, anything else (4xx, no reply) deferred."""
    if reply.code is not None and 200 <= reply.code < 300:
        return DELIVERED
    if reply.code is not None and 500 <= reply.code < 600:
        return BOUNCED
    return DEFERRED


def status_code(reply: Reply) -> str:
    """The RFC 3463 status for a DSN: the enhanced code in the reply, else one derived from the basic code."""
    match = _ENHANCED.match(reply.text)
    if match:
        return ".".join(match.groups())
    if reply.code is None:
        return "4.4.1"  # no answer from host
    return f"{reply.code // 100}.0.0"
