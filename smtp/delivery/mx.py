"""Where mail for a domain goes: MX lookup (RFC 5321 5.1) with a TTL cache shared through Redis.

The cache and its counters live in Redis so every worker process and host shares them; when Redis is
unreachable lookups still work, uncached. In front of Redis each process keeps the answers it read for
at most LOCAL_TTL seconds (never past their Redis expiry), and adds up its cache hits, writing them to
the shared counter at most every HITS_FLUSH_EVERY seconds (at once after a quiet spell) or every
HITS_FLUSH_COUNT hits, and from the worker's reconciler thread: a delivery costs no Redis round trip
for its MX.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass

import dns.exception
import dns.resolver
from redis import Redis
from redis.exceptions import RedisError

from mailferry.logs import log
from mailferry.metrics import worker_metrics

logger = logging.getLogger(__name__)
CACHE_KEY = "mailferry:mx:{domain}"
LOOKUPS_KEY = "mailferry:mx:dns_lookups"
HITS_KEY = "mailferry:mx:cache_hits"
LOCAL_TTL = 10.0  # seconds an answer read from Redis is reused by this process without asking again
HITS_FLUSH_EVERY = 5.0
HITS_FLUSH_COUNT = 100


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
        self._local: dict[str, tuple[float, _Answer]] = {}  # domain -> (monotonic expiry, answer)
        self._hits = 0  # cache hits not yet added to the shared counter
        self._hits_flushed_at = float("-inf")  # the first hit after a quiet spell is counted at once
        self._hits_lock = threading.Lock()  # the worker's reconciler thread flushes too

    def lookup(self, domain: str) -> list[MxHost]:
        """Hosts to try in order; raises MxError when there are none."""
        domain = domain.lower().rstrip(".")
        answer = self._cached(domain)
        if answer is None:
            answer = self._resolve(domain)
            worker_metrics().mx_lookups.inc()
            self._store(domain, answer)
        if answer.error:
            raise MxError(*answer.error, permanent=True)
        return order_hosts(answer.hosts)

    def counters(self) -> dict[str, int]:
        if self.redis is None:
            return {"dns_lookups": 0, "cache_hits": 0}
        self.flush_hits()
        return counters(self.redis)

    def flush_hits(self) -> None:
        """Add this process's pending cache hits to the shared counter (kept for later when Redis is down)."""
        with self._hits_lock:
            if self.redis is None or not self._hits:
                return
            try:
                self.redis.incrby(HITS_KEY, self._hits)
            except RedisError:
                return
            self._hits, self._hits_flushed_at = 0, time.monotonic()

    # ---- cache ----

    def _hit(self) -> None:
        worker_metrics().mx_cache_hits.inc()
        with self._hits_lock:
            self._hits += 1
            due = self._hits >= HITS_FLUSH_COUNT or time.monotonic() - self._hits_flushed_at >= HITS_FLUSH_EVERY
        if due:
            self.flush_hits()

    def _cached(self, domain: str) -> _Answer | None:
        if self.redis is None:
            return None
        local = self._local.get(domain)
        if local is not None and local[0] > time.monotonic():
            self._hit()
            return local[1]
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                raw, ttl = pipe.get(CACHE_KEY.format(domain=domain)).ttl(CACHE_KEY.format(domain=domain)).execute()
        except RedisError:
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        hosts = tuple(MxHost(p, n, tuple(a)) for p, n, a in data["hosts"])
        answer = _Answer(hosts, tuple(data["error"]) if data["error"] else None)
        self._remember(domain, answer, ttl)
        self._hit()
        return answer

    def _remember(self, domain: str, answer: _Answer, ttl: int) -> None:
        if ttl <= 0:
            return
        if len(self._local) >= 10_000:
            self._local.clear()
        self._local[domain] = (time.monotonic() + min(LOCAL_TTL, ttl), answer)

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
            return
        self._remember(domain, answer, ttl)

    # ---- DNS ----

    def _query(self, name: str, rdtype: str):
        try:
            return self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NXDOMAIN:
            raise
        except dns.resolver.NoNameservers:
            raise MxError(451, f"4.4.3 DNS lookup of {rdtype} for {name} failed: the DNS servers refused or could not "
                               "answer it", permanent=False) from None
        except dns.exception.Timeout:  # LifetimeTimeout is one
            raise MxError(451, f"4.4.3 DNS lookup of {rdtype} for {name} failed: no DNS server answered in time",
                          permanent=False) from None

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
