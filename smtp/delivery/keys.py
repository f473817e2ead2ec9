"""Alias domains' active DKIM keys, read and decrypted at most once a minute per domain and process."""

from __future__ import annotations

import logging
import time

from mailferry.db import Database
from mailferry.dkim_keys import SigningKey, signing_key
from mailferry.logs import log

logger = logging.getLogger(__name__)
KEY_CACHE_SECONDS = 60  # how soon a rotated key starts signing


class KeyCache:
    def __init__(self, db: Database, secret_key: str, enabled: bool, ttl: float = KEY_CACHE_SECONDS):
        self.db = db
        self.secret_key = secret_key
        self.enabled = enabled
        self.ttl = ttl
        self._cache: dict[str, tuple[float, SigningKey | None]] = {}

    def get(self, domain: str) -> SigningKey | None:
        """The key to sign with for `domain`, or None (DKIM off, no active key, undecryptable key)."""
        if not self.enabled:
            return None
        hit = self._cache.get(domain)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            with self.db.session() as s:
                key = signing_key(s, domain, self.secret_key)
        except ValueError as exc:  # SECRET_KEY changed since the key was stored
            log(logger, logging.ERROR, "DKIM key unusable, sending unsigned", domain=domain, error=str(exc))
            key = None
        self._cache[domain] = (time.monotonic(), key)
        return key
