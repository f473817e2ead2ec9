"""DNS for the inbound checks: answers cached across messages, and one time budget for all the lookups of one
message, so a sender whose records time out one after another is told 451 within the budget."""

from __future__ import annotations

import time

import dns.exception
import dns.resolver

CACHE_ENTRIES = 50_000


def caching_resolver(resolver: dns.resolver.Resolver) -> dns.resolver.Resolver:
    """`resolver` with an LRU cache honouring each answer's TTL (negative answers included), shared by threads."""
    resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
    return resolver


class BudgetResolver:
    """What the checks call `resolve` on: each lookup gets what is left of the message's budget (at most the
    resolver's own lifetime); once it is spent every lookup times out at once (a temperror, never a pass)."""

    def __init__(self, resolver: dns.resolver.Resolver, budget: float):
        self.resolver = resolver
        self.deadline = time.monotonic() + budget

    @property
    def lifetime(self) -> float:
        return self.resolver.lifetime

    def resolve(self, name, rdtype, *args, **kwargs):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise dns.exception.Timeout(timeout=0.0)
        kwargs["lifetime"] = min(self.resolver.lifetime, left)
        return self.resolver.resolve(name, rdtype, *args, **kwargs)
