"""The DMARC policy a sender's domain publishes, to decide whether a forward must rewrite From."""

from __future__ import annotations

import time

import dns.exception
import dns.resolver

from mailferry.org_domain import organisational_domain

_CACHE_TTL = 3600


def parse_dmarc(text: str) -> dict[str, str] | None:
    """The tags of a DMARC record (lower-cased), or None when `text` is not one."""
    if not text.lower().startswith("v=dmarc1"):
        return None
    pairs = (part.strip().split("=", 1) for part in text.split(";") if "=" in part)
    return {k.strip().lower(): v.strip().lower() for k, v in pairs}


class DmarcPolicies:
    """`policy(domain)` → "reject" | "quarantine" | "none" | None (no record), cached for an hour."""

    def __init__(self, resolver: dns.resolver.Resolver):
        self.resolver = resolver
        self._cache: dict[str, tuple[float, str | None]] = {}

    def policy(self, domain: str) -> str | None:
        domain = domain.lower().rstrip(".")
        hit = self._cache.get(domain)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        found = self._lookup(domain)
        organisational = organisational_domain(domain)
        if found is None and organisational != domain:
            found = self._lookup(organisational, subdomain=True)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[domain] = (time.monotonic() + _CACHE_TTL, found)
        return found

    def _lookup(self, domain: str, subdomain: bool = False) -> str | None:
        try:
            answer = self.resolver.resolve(f"_dmarc.{domain}", "TXT")
        except (dns.exception.DNSException, OSError):
            return None
        for rdata in answer:
            tags = parse_dmarc(b"".join(rdata.strings).decode("ascii", "replace"))
            if tags is not None:
                return tags.get("sp", tags.get("p")) if subdomain else tags.get("p")
        return None
