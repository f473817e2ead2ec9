"""Which addresses a connection built from DNS data may go to (the SSRF guard).

Delivery to an MX host, and any later outbound connection to a host named by a user (webhooks), must not
reach this machine or its private network: loopback, RFC 1918, CGNAT, link-local and cloud metadata,
unspecified, multicast and reserved addresses are refused, also when they hide inside an IPv6 form
(IPv4-mapped, IPv4-compatible, NAT64, 6to4). `ALLOW_PRIVATE_DESTINATIONS=true` lifts the refusal for
development and tests. The caller resolves once, checks, and connects to the checked IP literal, so a DNS
answer that changes in between cannot redirect the connection.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import dns.resolver

from .dns_lookup import host_addresses

NOT_AN_ADDRESS = "not an IP address"
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# First match names the reason, so the narrow ranges come before the ones that contain them.
_REFUSED = tuple((ipaddress.ip_network(net), reason) for net, reason in (
    ("169.254.169.254/32", "cloud metadata"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "CGNAT"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("64:ff9b:1::/48", "private NAT64"),
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d


@dataclass(frozen=True)
class Verdict:
    address: str
    allowed: bool
    reason: str = ""  # what kind of address it is when it is not public, e.g. "private (10.0.0.0/8)"

    def __str__(self) -> str:
        return self.address if not self.reason else f"{self.address}: {self.reason}"


class DestinationRefused(Exception):
    """No address of a destination may be connected to; `str()` says which and why."""

    def __init__(self, text: str, verdicts: tuple[Verdict, ...] = ()):
        super().__init__(text)
        self.verdicts = verdicts


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches: IPv4-mapped, IPv4-compatible, NAT64 well-known prefix, 6to4."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _kind(ip: _Address) -> str:
    """'' for a public address, else what it is."""
    for network, reason in _REFUSED:
        if ip.version == network.version and ip in network:
            return f"{reason} ({network})"
    if ip.version == 6:
        inner = _embedded(ip)
        if inner is not None:
            kind = _kind(inner)
            return f"{kind}, embedded as {inner}" if kind else ""
    return "" if ip.is_global else "reserved (not globally routable)"


@functools.lru_cache(maxsize=4096)
def classify(address: str) -> Verdict:
    """Whether `address` (an IP literal) is a public destination; anything else is refused."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Verdict(address, False, NOT_AN_ADDRESS)
    kind = _kind(ip)
    return Verdict(address, not kind, kind)


def refusal(name: str, verdicts: Iterable[Verdict]) -> str:
    """'mx.example resolves only to private addresses (10.0.0.1, ::1)'."""
    return f"{name} resolves only to private addresses ({', '.join(v.address for v in verdicts)})"


@dataclass(frozen=True)
class DestinationGuard:
    """ALLOW_PRIVATE_DESTINATIONS applied to classify(); an IP literal is required either way."""

    allow_private: bool = False

    def check(self, address: str) -> Verdict:
        verdict = classify(address)
        if verdict.allowed or not self.allow_private or verdict.reason == NOT_AN_ADDRESS:
            return verdict
        return Verdict(address, True, verdict.reason)

    def split(self, addresses: Iterable[str]) -> tuple[tuple[str, ...], tuple[Verdict, ...]]:
        """(the addresses that may be connected to, the verdicts of those refused), order kept."""
        verdicts = [self.check(a) for a in addresses]
        return tuple(v.address for v in verdicts if v.allowed), tuple(v for v in verdicts if not v.allowed)

    def resolve(self, host: str, resolver: dns.resolver.Resolver) -> tuple[str, ...]:
        """The checked addresses to connect to for `host` (a name or an IP literal), A before AAAA; raises
        DestinationRefused when none may be used and DnsTemporaryError when DNS does not answer."""
        literal = classify(host).reason != NOT_AN_ADDRESS
        addresses = [host] if literal else host_addresses(resolver, host, "A") + host_addresses(resolver, host, "AAAA")
        if not addresses:
            raise DestinationRefused(f"{host} has no address")
        allowed, refused = self.split(addresses)
        if not allowed:
            raise DestinationRefused(refusal(host, refused), refused)
        return allowed
