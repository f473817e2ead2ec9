"""Organisational domains (RFC 7489 3.2) from the Public Suffix List that `publicsuffixlist` ships."""

from __future__ import annotations

import threading

from publicsuffixlist import PublicSuffixList

_lock = threading.Lock()
_loaded: list[PublicSuffixList] = []


def _list() -> PublicSuffixList:
    """The list, parsed once per process (80 ms of CPU) on first use, under a lock: the inbound checks' threads
    all want it at once, and each would parse its own copy."""
    if not _loaded:
        with _lock:
            if not _loaded:
                _loaded.append(PublicSuffixList())
    return _loaded[0]


def load() -> None:
    """Parse the list now (servers call it at start, so the first message does not wait for it)."""
    _list()


def organisational_domain(domain: str) -> str:
    """The registered domain: `mail.example.co.uk` -> `example.co.uk`. A public suffix itself, or a name with
    an unknown TLD of one label, is its own organisational domain."""
    name = domain.lower().rstrip(".")
    return _list().privatesuffix(name) or name


def aligned(domain: str, from_domain: str, mode: str = "r") -> bool:
    """DMARC identifier alignment: strict (`s`) is the same name, relaxed the same organisational domain."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not domain or not from_domain:
        return False
    if mode == "s":
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)
