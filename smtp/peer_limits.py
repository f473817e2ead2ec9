"""Concurrent sessions per client address, in one SMTP process (like Postfix's smtpd_client_connection_count_limit).

Only the event loop thread touches the counts, so no lock is needed.
"""

from __future__ import annotations

from collections import Counter


class PeerLimits:
    def __init__(self, limit: int):
        self.limit = limit  # 0 = no limit
        self.open: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Count one more session from `address`, or refuse it when the address is at its limit."""
        if self.limit and self.open[address] >= self.limit:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
