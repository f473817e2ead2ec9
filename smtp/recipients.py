"""RCPT TO resolution: which addresses we accept and where their copies go. Never an open relay."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

from sqlalchemy import select

from mailferry.db import Database
from mailferry.models import CATCH_ALL, ROLE_ADMIN, Alias, Domain, Mailbox, User

from . import replies
from .inbound.policy import DomainPolicy
from .routes import SRS_RETURN, Route
from .srs import Srs, SrsError

MAX_LOCAL_PART_OCTETS = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN_OCTETS = 255  # RFC 5321 4.5.3.1.2
# Sender-specified routing inside a local part (user%host@us, host!user@us, "user@host"@us): we route by
# alias only, and a catch-all must not take them either (Postfix: allow_untrusted_routing = no).
ROUTING_CHARACTERS = frozenset("%!@")
# Every domain we accept mail for must take postmaster (RFC 5321 4.5.1) and should take abuse (RFC 2142): without
# an alias of their own they go to the domain owner's account address.
ROLE_ADDRESSES = frozenset({"postmaster", "abuse"})
CACHE_MAX_ENTRIES = 10_000
_POLICY_COLUMNS = (Domain.dmarc_reject_policy, Domain.dmarc_quarantine_policy, Domain.spam_action,
                   Domain.spam_threshold)
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+$|^\[[0-9A-Fa-f:.]+\]$")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Resolution:
    """The outcome of one RCPT: a route when accepted, else the refusal reply."""

    reply: str
    route: Route | None = None

    @property
    def accepted(self) -> bool:
        return self.route is not None


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.rstrip(".").lower()


def is_mailbox(address: str) -> bool:
    """local@domain with both parts present and a syntactically valid domain (aiosmtpd accepts far less)."""
    local, _, domain = address.rpartition("@")
    return bool(local) and bool(_DOMAIN.match(domain)) and not any(c.isspace() for c in address)


def recipient_refusal(address: str) -> str | None:
    """The refusal for a RCPT address that no lookup could accept, or None: a domain that is not a host name
    (a trailing dot, an empty or over-long label, over 255 octets), sender-specified routing in the local part.
    IP literals and unknown domains are left to the lookup, which denies them as relaying."""
    if address.lower() == "postmaster":
        return None
    local, _, domain = address.rpartition("@")
    if not domain.startswith("["):
        if len(domain) > MAX_DOMAIN_OCTETS or not all(_LABEL.fullmatch(label) for label in domain.split(".")):
            return replies.MALFORMED_ADDRESS
    if not Srs.is_srs(address) and not ROUTING_CHARACTERS.isdisjoint(local):
        return replies.RELAY_DENIED
    return None


def lookup_candidates(local: str) -> list[str]:
    """Local parts to try, most specific first: exact, base of a +tag sub-address, catch-all."""
    local = local.lower()
    candidates = [local]
    base = local.split("+", 1)[0]
    if base and base != local:
        candidates.append(base)
    candidates.append(CATCH_ALL)
    return candidates


def usable(query, owner_id, address_column):
    """`query` narrowed to rows whose `address_column` is a verified, unsuspended mailbox of `owner_id`."""
    return query.join(Mailbox, (Mailbox.owner_id == owner_id) & (Mailbox.address == address_column)).where(
        Mailbox.verified_at.is_not(None), Mailbox.suspended_at.is_(None))


class RecipientResolver:
    """Blocking lookups (run them in a thread pool); `cached`/`remember` are for the event loop thread only.

    `require_verified` (REQUIRE_VERIFIED_DESTINATIONS): a route keeps only destinations that are verified,
    unsuspended mailboxes of the domain's owner; the role routes (postmaster@, abuse@ of a domain, and this
    server's postmaster) go to an account address only when that address is such a mailbox too."""

    def __init__(self, db: Database, srs: Srs, cache_ttl: float = 10.0, hostname: str = "",
                 require_verified: bool = True):
        self.db = db
        self.hostname = hostname  # SMTP_HOSTNAME: the domain of a bare <postmaster>
        self.require_verified = require_verified
        self.srs = srs
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, Resolution]] = {}

    # ---- cache (event loop thread) ----
    @staticmethod
    def cache_key(address: str) -> str:
        return address if Srs.is_srs(address) else address.lower()

    def cached(self, address: str) -> Resolution | None:
        hit = self._cache.get(self.cache_key(address))
        if hit is None or hit[0] < time.monotonic():
            return None
        resolution = hit[1]
        route = resolution.route
        if route is not None and route.recipient != address and route.recipient.lower() == address.lower():
            resolution = replace(resolution, route=replace(resolution.route, recipient=address))
        return resolution

    def remember(self, address: str, resolution: Resolution) -> None:
        if self.cache_ttl <= 0:
            return
        now = time.monotonic()
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[0] >= now}
            if len(self._cache) >= CACHE_MAX_ENTRIES:  # a flood of distinct addresses: start over
                self._cache.clear()
        self._cache[self.cache_key(address)] = (now + self.cache_ttl, resolution)

    # ---- lookup (worker thread) ----
    def resolve(self, address: str) -> Resolution:
        if address.lower() == "postmaster":  # RFC 5321 4.5.1: accepted without a domain
            return self._server_postmaster()
        local, domain = split_address(address)
        if not local or not domain:
            return Resolution(replies.UNKNOWN_RECIPIENT)
        is_srs = Srs.is_srs(address)
        # Our SRS local parts embed a whole foreign address and can be longer than 64 octets; the hash guards them.
        if not is_srs and len(local.encode("utf-8", "surrogateescape")) > MAX_LOCAL_PART_OCTETS:
            return Resolution(replies.LOCAL_PART_TOO_LONG)
        with self.db.sessionmaker() as session:
            found = session.execute(
                select(Domain.id, Domain.owner_id, Domain.verified, *_POLICY_COLUMNS).where(Domain.name == domain)
                .order_by(Domain.verified.desc()).limit(1)  # several accounts may claim a name; one verified it
            ).first()
            if found is None or not found.verified:
                return Resolution(replies.RELAY_DENIED)
            policy = DomainPolicy(found.dmarc_reject_policy, found.dmarc_quarantine_policy, found.spam_action,
                                  found.spam_threshold)
            if is_srs:
                resolution = self._srs_return(address, found.id)
            else:
                resolution = self._alias(session, address, local, found.id, found.owner_id)
            if resolution.route is not None:
                resolution = replace(resolution, route=replace(resolution.route, policy=policy))
            return resolution

    def _srs_return(self, address: str, domain_id: int) -> Resolution:
        try:
            original = self.srs.reverse(address)
        except SrsError:
            return Resolution(replies.BAD_SRS_ADDRESS)
        route = Route(recipient=address, destinations=(original,), kind=SRS_RETURN, domain_id=domain_id)
        return Resolution(replies.OK_RECIPIENT, route)

    def _alias(self, session, address: str, local: str, domain_id: int, owner_id: int) -> Resolution:
        candidates = lookup_candidates(local)
        rows = {
            alias.local_part: alias
            for alias in session.scalars(
                select(Alias).where(Alias.domain_id == domain_id, Alias.local_part.in_(candidates))
            )
        }
        for candidate in candidates:
            alias = rows.get(candidate)
            if alias is None:
                continue
            # A disabled alias refuses its address even when a catch-all exists: disabling is how owners stop spam.
            if not alias.enabled or not alias.destinations:
                return Resolution(replies.UNKNOWN_RECIPIENT)
            destinations = self._confirmed(session, owner_id, alias.destinations)
            if not destinations:
                return Resolution(replies.UNCONFIRMED_DESTINATION)
            route = Route(recipient=address, destinations=destinations, domain_id=domain_id, alias_id=alias.id)
            return Resolution(replies.OK_RECIPIENT, route)
        if candidates[-2] in ROLE_ADDRESSES:  # the base local part, +tag removed
            return self._role_address(session, address, domain_id)
        return Resolution(replies.UNKNOWN_RECIPIENT)

    def _confirmed(self, session, owner_id: int, destinations: list[str]) -> tuple[str, ...]:
        """The destinations mail may go to, in the alias's order (one indexed query when verification is on)."""
        if not self.require_verified:
            return tuple(destinations)
        ok = set(session.scalars(select(Mailbox.address).where(
            Mailbox.owner_id == owner_id, Mailbox.address.in_({d.lower() for d in destinations}),
            Mailbox.verified_at.is_not(None), Mailbox.suspended_at.is_(None))))
        return tuple(d for d in destinations if d.lower() in ok)

    def _server_postmaster(self) -> Resolution:
        """This server's postmaster: the first admin account's address."""
        query = select(User.email).where(User.role == ROLE_ADMIN, User.active).order_by(User.id)
        if self.require_verified:
            query = usable(query, User.id, User.email)
        with self.db.sessionmaker() as session:
            admin = session.scalar(query)
        if not admin or not self.hostname:
            return Resolution(replies.UNKNOWN_RECIPIENT)
        return Resolution(replies.OK_RECIPIENT, Route(recipient=f"postmaster@{self.hostname}", destinations=(admin,)))

    def _role_address(self, session, address: str, domain_id: int) -> Resolution:
        query = select(User.email).join(Domain, Domain.owner_id == User.id).where(Domain.id == domain_id, User.active)
        if self.require_verified:
            query = usable(query, User.id, User.email)
        owner_email = session.scalar(query)
        if not owner_email:
            return Resolution(replies.UNKNOWN_RECIPIENT)
        return Resolution(replies.OK_RECIPIENT, Route(recipient=address, destinations=(owner_email,), domain_id=domain_id))
