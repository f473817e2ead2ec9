"""Small DNS queries (verification, SPF, authentication results): empty on NXDOMAIN/no data, DnsTemporaryError on timeout or SERVFAIL."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.resolver


class DnsTemporaryError(Exception):
    """The answer is unknown (timeout, SERVFAIL): not the same as 'no record'."""


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str):
    try:
        answer = resolver.resolve(name.rstrip(".") + ".", rdtype, search=False, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise DnsTemporaryError(f"DNS lookup of {name} {rdtype} timed out after {resolver.lifetime:g}s") from None
    except dns.resolver.NoNameservers:
        raise DnsTemporaryError(f"DNS lookup of {name} {rdtype} failed: no name server answered (SERVFAIL)") from None
    except dns.exception.DNSException as exc:  # a malformed name, e.g. from an SPF macro
        raise DnsTemporaryError(f"DNS lookup of {name} {rdtype} failed: {exc}") from None
    return list(answer.rrset) if answer.rrset is not None else []


def txt_records(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """Each TXT record as one string, its character-strings joined without separator (RFC 7208 3.3)."""
    return [b"".join(r.strings).decode("utf-8", "replace") for r in _query(resolver, name, "TXT")]


def mx_records(resolver: dns.resolver.Resolver, name: str) -> list[tuple[int, str]]:
    """(preference, lower-case host without trailing dot), best first; a null MX comes back as (0, '')."""
    records = [(r.preference, "" if r.exchange == dns.name.root else r.exchange.to_text(omit_final_dot=True).lower())
               for r in _query(resolver, name, "MX")]
    return sorted(records)


def host_addresses(resolver: dns.resolver.Resolver, name: str, rdtype: str = "A") -> list[str]:
    return [r.address for r in _query(resolver, name, rdtype)]
