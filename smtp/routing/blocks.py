"""Tell a 5xx that blocks our IP (fall back to a relay) from one about the recipient (bounce)."""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BLOCK_WORDS = re.compile(
    r"block|blacklist|blocklist|denylist|reputation|spamhaus|spamcop|barracuda|\brbl\b|\bdnsbl\b|"
    r"listed|not allowed to send|poor reputation|client host|ip address|your ip|sender ip",
    re.IGNORECASE,
)
_RECIPIENT_CLASSES = {"1", "2"}  # 5.1.x addressing (user unknown), 5.2.x mailbox (full, disabled)


def is_ip_block(code: int, text: str) -> bool:
    """True for a permanent reply that refuses *us* (our address or reputation), not the recipient."""
    if not 500 <= code < 600:
        return False
    enhanced = _ENHANCED.search(text or "")
    if enhanced and enhanced.group(2) in _RECIPIENT_CLASSES:
        return False
    if enhanced and (enhanced.group(2), enhanced.group(3)) in {("7", "606"), ("7", "25")}:
        return True  # Microsoft/Google codes for blocked or unauthenticated sending IPs
    return bool(_BLOCK_WORDS.search(text or ""))
