"""PLACEHOLDER until the rspamd branch is merged (replaced by it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpamVerdict:
    action: str
    score: float = 0.0
    required: float = 0.0
    symbols: tuple[str, ...] = ()
    message: str = ""
    error: str = ""

    @property
    def scanned(self) -> bool:
        return not self.error and bool(self.action)


class RspamdClient:
    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout

    async def scan(self, raw: bytes, **kw) -> SpamVerdict:
        return SpamVerdict("", error="placeholder")


def x_spam_headers(verdict: SpamVerdict) -> bytes:
    return f"X-Spam-Flag: YES\r\nX-Spam-Score: {verdict.score:.2f}\r\n".encode()
