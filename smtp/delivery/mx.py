"""Where mail for a domain goes: MX lookup (RFC 5321 5.1) with a TTL cache shared through Redis.

The cache and its counters live in Redis so every worker process and host shares them; when Redis is
unreachable lookups still work, uncached.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass

import dns.exception
import dns.resolver
from redis import Redis
from redis.exceptions import RedisError

from mailferry.logs import log

logger = logging.getLogger(__name__)
CACHE_KEY = "mailferry:mx:{domain}"
LOOKUPS_KEY = "mailferry:mx:dns_lookups"
HITS_KEY = "mailferry:mx:cache_hits"


@dataclass(frozen=True)
class MxHost:
    preference: int
    name: str
    addresses: tuple[str, ...]


class MxError(Exception):
    """No host to try: `permanent` ones bounce (null MX, no such domain), the others are retried."""

    def __init__(self, code: int, text: str, permanent: bool):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.permanent = permanent


@dataclass(frozen=True)
class _Answer:
    hosts: tuple[MxHost, ...] = ()
    error: tuple[int, str] | None = None  # permanent failures are cached too
    ttl: int = 0


def counters(redis: Redis) -> dict[str, int]:
    """DNS lookups made and answers served from the MX cache, summed over all workers (for stats pages)."""
    lookups, hits = redis.mget(LOOKUPS_KEY, HITS_KEY)
    return {"dns_lookups": int(lookups or 0), "cache_hits": int(hits or 0)}


def order_hosts(hosts: tuple[MxHost, ...], rng: random.Random | None = None) -> list[MxHost]:
    """By preference, random among equal preferences (RFC 5321 5.1) so load spreads."""
    rng = rng or random
    return sorted(hosts, key=lambda h: (h.preference, rng.random()))


class MxResolver:
    def __init__(self, resolver: dns.resolver.Resolver, redis: Redis | None, min_ttl: int, max_ttl: int):
        self.resolver = resolver
        self.redis = redis
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl

    def lookup(self, domain: str) -> list[MxHost]:
        """Hosts to try in order; raises MxError when there are none."""
        domain = domain.lower().rstrip(".")
        answer = self._cached(domain)
        if answer is None:
            answer = self._resolve(domain)
            self._store(domain, answer)
        if answer.error:
            raise MxError(*answer.error, permanent=True)
        return order_hosts(answer.hosts)

    def counters(self) -> dict[str, int]:
        return counters(self.redis) if self.redis is not None else {"dns_lookups": 0, "cache_hits": 0}

    # ---- cache ----

    def _cached(self, domain: str) -> _Answer | None:
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(CACHE_KEY.format(domain=domain))
            if raw is None:
                return None
            self.redis.incr(HITS_KEY)
        except RedisError:
            return None
        data = json.loads(raw)
        hosts = tuple(MxHost(p, n, tuple(a)) for p, n, a in data["hosts"])
        return _Answer(hosts, tuple(data["error"]) if data["error"] else None)

    def _store(self, domain: str, answer: _Answer) -> None:
        if self.redis is None:
            return
        ttl = max(self.min_ttl, min(self.max_ttl, answer.ttl))
        data = {"hosts": [[h.preference, h.name, list(h.addresses)] for h in answer.hosts], "error": answer.error}
        try:
            self.redis.incr(LOOKUPS_KEY)
            if ttl > 0:
                self.redis.set(CACHE_KEY.format(domain=domain), json.dumps(data), ex=ttl)
        except RedisError:
            pass

    # ---- DNS ----

    def _query(self, name: str, rdtype: str):
        try:
            return self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NXDOMAIN:
            raise
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise MxError(451, f"4.4.3 DNS lookup for {name} failed: {type(exc).__name__}", permanent=False) from None

    def _addresses(self, name: str) -> tuple[tuple[str, ...], int]:
        addresses: list[str] = []
        ttls: list[int] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._query(name, rdtype)
            except dns.resolver.NXDOMAIN:
                return (), self.min_ttl
            if answer is not None:
                addresses += [r.address for r in answer]
                ttls.append(answer.rrset.ttl)
        return tuple(addresses), min(ttls, default=self.min_ttl)

    def _resolve(self, domain: str) -> _Answer:
        try:
            mx = self._query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return _Answer(error=(550, f"5.1.2 domain {domain} does not exist"), ttl=self.min_ttl)
        if mx is None:
            return self._implicit(domain)
        records = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in mx]
        if all(name in ("", ".") for _, name in records):
            return _Answer(error=(556, f"5.1.10 {domain} does not accept mail (null MX)"), ttl=mx.rrset.ttl)
        hosts, ttls = [], [mx.rrset.ttl]
        for preference, name in records:
            if name in ("", "."):
                continue
            addresses, ttl = self._addresses(name)
            ttls.append(ttl)
            if addresses:
                hosts.append(MxHost(preference, name, addresses))
            else:
                log(logger, logging.WARNING, "MX host has no address", domain=domain, mx=name)
        if not hosts:
            raise MxError(451, f"4.4.4 no MX host of {domain} has an address", permanent=False)
        return _Answer(tuple(hosts), ttl=min(ttls))

    def _implicit(self, domain: str) -> _Answer:
        """No MX record: the domain's own address is the implicit MX (RFC 5321 5.1)."""
        addresses, ttl = self._addresses(domain)
        if not addresses:
            return _Answer(error=(550, f"5.1.2 {domain} has no MX or address record"), ttl=self.min_ttl)
        return _Answer((MxHost(0, domain, addresses),), ttl=ttl)
