"""Counting what the inbound server answers: accepted messages and refusals by reason, from the reply sent.

The reason of a refusal is read off the reply constants of smtp/replies.py here and nowhere else, so a new
refusal only needs its line in REASONS.
"""

from __future__ import annotations

import functools
import re

from mailferry.metrics import smtp_metrics

from . import replies

UNKNOWN_RECIPIENT, RELAY_DENIED, DMARC, AUTHENTICATION = "unknown_recipient", "relay_denied", "dmarc", "authentication"
SPAM, RATE_LIMIT, SIZE, LOOP, TEMPORARY, OTHER = "spam", "rate_limit", "size", "loop", "temporary", "other"
REASONS = {
    replies.UNKNOWN_RECIPIENT: UNKNOWN_RECIPIENT, replies.UNCONFIRMED_DESTINATION: UNKNOWN_RECIPIENT,
    replies.BAD_SRS_ADDRESS: UNKNOWN_RECIPIENT,
    replies.RELAY_DENIED: RELAY_DENIED, replies.SOURCE_ROUTE: RELAY_DENIED,
    replies.DMARC_REJECTED: DMARC, replies.AUTH_REJECTED: AUTHENTICATION,
    replies.SPAM_REJECTED: SPAM,
    replies.RATE_LIMITED_SENDER: RATE_LIMIT, replies.RATE_LIMITED_RECIPIENT: RATE_LIMIT,
    replies.HARVESTING: RATE_LIMIT, replies.TOO_MANY_CONNECTIONS: RATE_LIMIT, replies.TOO_MANY_ERRORS: RATE_LIMIT,
    replies.TOO_MANY_RECIPIENTS: RATE_LIMIT,
    replies.MESSAGE_TOO_BIG: SIZE,
    replies.MAIL_LOOP: LOOP,
}
_QUEUED = replies.QUEUED.partition("{")[0]


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern, str], ...]:
    """Each reply template as a pattern ({host}, {domain}... match anything)."""
    return tuple((re.compile(".*".join(re.escape(p) for p in re.split(r"\{\w*\}", template)), re.DOTALL), reason)
                 for template, reason in REASONS.items())


@functools.lru_cache(maxsize=1024)  # bounded: a DMARC refusal names the sender's domain
def refusal_reason(reply: str) -> str | None:
    """Why `reply` refuses (None: it does not). Cached: most replies repeat word for word."""
    if reply[:1] not in ("4", "5"):
        return None
    for pattern, reason in _patterns():
        if pattern.fullmatch(reply):
            return reason
    return TEMPORARY if reply[0] == "4" else OTHER


def count_reply(reply: str) -> None:
    """Count one reply the server sends: a message queued, or a refusal under its reason."""
    if reply.startswith(_QUEUED):
        smtp_metrics().accepted.inc()
        return
    reason = refusal_reason(reply)
    if reason is not None:
        smtp_metrics().refused.labels(reason).inc()
