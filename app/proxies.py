"""Client addresses behind a reverse proxy: X-Forwarded-* believed only from TRUSTED_PROXIES.

Werkzeug's ProxyFix trusts a fixed number of hops from anyone; here a request's forwarded headers count only
when it comes from a trusted proxy, and the client is the right-most X-Forwarded-For address that is not one
of our proxies (the left part of the header is whatever the client sent, so it is never believed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR becomes the forwarded client, and scheme and host the forwarded ones, only
    for requests whose peer is a trusted proxy."""

    def __init__(self, app: Callable, networks: Iterable[str]):
        self.app = app
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)
        self._forwarded = ProxyFix(app, x_for=0, x_proto=1, x_host=1)  # scheme and host from the proxy

    def trusted(self, value: str) -> bool:
        address = _address(value)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The right-most forwarded address that is not a trusted proxy (the peer when there is none)."""
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if _address(hop) is None:
                return peer  # garbage in the chain: believe nothing beyond our proxy
            if not self.trusted(hop):
                return hop.strip("[]")
        return peer

    def __call__(self, environ: dict, start_response: Callable):
        peer = environ.get("REMOTE_ADDR", "")
        if not self.networks or not self.trusted(peer):
            for header in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"):
                environ.pop(header, None)  # nothing downstream may read what an untrusted peer claims
            return self.app(environ, start_response)
        environ["REMOTE_ADDR"] = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
        return self._forwarded(environ, start_response)
