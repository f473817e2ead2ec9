"""The one DNS resolver factory: MX lookups (delivery) and record checks (verification) both use it."""

from __future__ import annotations

import dns.resolver

from .settings import Settings


def make_resolver(settings: Settings) -> dns.resolver.Resolver:
    """A dnspython resolver honouring DNS_NAMESERVERS (host[:port] list) and DNS_TIMEOUT."""
    servers = settings.DNS_NAMESERVERS
    resolver = dns.resolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = [host for host, _ in servers]
        ports = {port for _, port in servers}
        resolver.port = ports.pop() if len(ports) == 1 else 53
        if len(servers) > 1 and len({p for _, p in servers}) > 1:
            # dnspython keeps one port per resolver unless nameservers are given as Nameserver objects
            from dns.nameserver import Do53Nameserver

            resolver.nameservers = [Do53Nameserver(host, port) for host, port in servers]
    resolver.timeout = settings.DNS_TIMEOUT
    resolver.lifetime = settings.DNS_TIMEOUT
    resolver.cache = None  # callers cache what they need with their own TTL clamps
    return resolver
