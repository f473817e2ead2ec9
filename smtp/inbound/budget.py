"""DNS for the inbound checks: answers cached across messages, and one time budget for all the lookups of one
message, so a sender whose records time out one after another is told 451 within the budget."""

from __future__ import annotations

import time

import dns.exception
import dns.resolver

CACHE_ENTRIES = 50_000


class AnswerMemo:
    """The positive answers of the resolver's cache, found by the question as the checks ask it (name text,
    type, options). A hit in dnspython's own cache still costs ~50 us of Python (name parsing, a resolution
    object, the LRU bookkeeping); three to five of them per message were a fifth of the authentication CPU.
    Entries expire with the answer (its smallest TTL); negative answers and errors always go to dnspython."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self.answers: dict = {}

    def get(self, key):
        answer = self.answers.get(key)
        if answer is not None and answer.expiration > time.time():
            return answer
        return None

    def put(self, key, answer) -> None:
        if answer.rrset is None:
            return
        if len(self.answers) >= self.entries:
            self.answers.clear()  # the LRU cache behind still has them: refilled at a dnspython hit's cost
        self.answers[key] = answer


class CachedDns:
    """A resolver with an LRU cache honouring each answer's TTL (negative answers included) and the memo in
    front of it, shared by the threads of one server."""

    def __init__(self, resolver: dns.resolver.Resolver):
        resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
        self.resolver = resolver
        self.memo = AnswerMemo()


class BudgetResolver:
    """What the checks call `resolve` on: each lookup gets what is left of the message's budget (at most the
    resolver's own lifetime); once it is spent every lookup times out at once (a temperror, never a pass)."""

    def __init__(self, dns_cache: CachedDns, budget: float):
        self.resolver = dns_cache.resolver
        self.memo = dns_cache.memo
        self.deadline = time.monotonic() + budget

    @property
    def lifetime(self) -> float:
        return self.resolver.lifetime

    def resolve(self, name, rdtype, *args, **kwargs):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise dns.exception.Timeout(timeout=0.0)
        key = None
        if not args and isinstance(name, str) and isinstance(rdtype, str):
            key = (name, rdtype, tuple(sorted(kwargs.items())))
            try:
                answer = self.memo.get(key)
            except TypeError:  # an unhashable option: not a question the checks ask
                key = answer = None
            if answer is not None:
                return answer
        kwargs["lifetime"] = min(self.resolver.lifetime, left)
        answer = self.resolver.resolve(name, rdtype, *args, **kwargs)
        if key is not None:
            self.memo.put(key, answer)
        return answer
