"""What this hop can vouch for about a message it received (RFC 8601 Authentication-Results): SPF of the
connecting address, the sender's DKIM signatures, DMARC alignment of the From domain, and an ARC chain
that came with the message. `arc.py` seals these results so that a receiver trusting us can still use
them after the forward broke the sender's SPF alignment.

DNS goes through the configured resolver; a lookup that fails makes that method `temperror`, never an
exception.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import dkim
import dns.resolver
from dkim.util import parse_tag_value

from mailferry.dns_lookup import DnsTemporaryError, txt_records
from mailferry.spf import SpfEvaluator
from smtp.from_rewrite import from_addresses
from smtp.routing.dmarc import organisational_domain, parse_dmarc

_SILENT = logging.getLogger("smtp.delivery.authentication.dkimpy")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


@dataclass(frozen=True)
class MethodResult:
    method: str  # spf | dkim | dmarc | arc
    result: str  # pass | fail | none | neutral | softfail | temperror | permerror
    properties: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        return " ".join([f"{self.method}={self.result}", *(f"{k}={v}" for k, v in self.properties if v)])


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]

    def header(self) -> bytes:
        """`Authentication-Results: <authserv-id>; method=result ...` folded one method per line, CRLF."""
        body = ";\r\n\t".join([self.authserv_id, *(r.text() for r in self.results)] or [self.authserv_id])
        if not self.results:
            body += "; none"
        return f"Authentication-Results: {body}\r\n".encode("utf-8", "replace")

    def result(self, method: str) -> str | None:
        return next((r.result for r in self.results if r.method == method), None)


def _aligned(domain: str, from_domain: str, mode: str) -> bool:
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return domain == from_domain if mode == "s" else organisational_domain(domain) == organisational_domain(from_domain)


def header_values(raw: bytes, name: bytes) -> list[bytes]:
    headers, _ = dkim.rfc822_parse(raw)
    return [value for key, value in headers if key.lower() == name]


def from_domain(raw: bytes) -> str:
    """The From domain DMARC aligns against; none when the message has no single From address."""
    addresses = from_addresses(raw)
    return addresses[0].rpartition("@")[2].lower() if len(addresses) == 1 else ""


class Authenticator:
    def __init__(self, resolver: dns.resolver.Resolver, authserv_id: str):
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.spf = SpfEvaluator(resolver)

    def check(self, raw: bytes, *, mail_from: str, peer_ip: str, helo: str) -> AuthResults:
        spf = self._spf(mail_from, peer_ip, helo)
        signatures = self._dkim(raw)
        results = [spf, *signatures, self._dmarc(raw, mail_from, spf, signatures)]
        if header_values(raw, b"arc-seal"):
            results.append(self._arc(raw))
        return AuthResults(self.authserv_id, tuple(results))

    def _spf(self, mail_from: str, peer_ip: str, helo: str) -> MethodResult:
        domain = mail_from.rpartition("@")[2] if mail_from else helo
        prop = ("smtp.mailfrom", mail_from) if mail_from else ("smtp.helo", helo)
        try:
            ipaddress.ip_address(peer_ip)
        except ValueError:
            return MethodResult("spf", "none", (prop,))
        if not domain:
            return MethodResult("spf", "none", (prop,))
        return MethodResult("spf", self.spf.check_host(peer_ip, domain, mail_from or None).result, (prop,))

    def _dkim(self, raw: bytes) -> list[MethodResult]:
        signatures = header_values(raw, b"dkim-signature")
        return [self._one_dkim(raw, i, value) for i, value in enumerate(signatures)] or [MethodResult("dkim", "none")]

    def _one_dkim(self, raw: bytes, index: int, value: bytes) -> MethodResult:
        try:
            tags = parse_tag_value(value)
        except dkim.InvalidTagValueList:
            return MethodResult("dkim", "permerror")
        props = (("header.d", tags.get(b"d", b"").decode("ascii", "replace")),
                 ("header.s", tags.get(b"s", b"").decode("ascii", "replace")))
        lookup = _TxtLookup(self.resolver)
        try:
            ok = dkim.DKIM(raw, logger=_SILENT).verify(idx=index, dnsfunc=lookup)
        except dkim.DKIMException:
            ok = False
        if lookup.temporary:
            return MethodResult("dkim", "temperror", props)
        return MethodResult("dkim", "pass" if ok else "fail", props)

    def _dmarc(self, raw: bytes, mail_from: str, spf: MethodResult,
               signatures: list[MethodResult]) -> MethodResult:
        domain = from_domain(raw)
        if not domain:
            return MethodResult("dmarc", "none")
        try:
            tags = self._dmarc_record(domain)
        except DnsTemporaryError:
            return MethodResult("dmarc", "temperror", (("header.from", domain),))
        if tags is None:
            return MethodResult("dmarc", "none", (("header.from", domain),))
        spf_domain = mail_from.rpartition("@")[2]
        passed = (spf.result == "pass" and bool(spf_domain) and _aligned(spf_domain, domain, tags.get("aspf", "r"))) \
            or any(s.result == "pass" and _aligned(dict(s.properties)["header.d"], domain, tags.get("adkim", "r"))
                   for s in signatures)
        return MethodResult("dmarc", "pass" if passed else "fail", (("header.from", domain),))

    def _dmarc_record(self, domain: str) -> dict[str, str] | None:
        for name in dict.fromkeys([domain, organisational_domain(domain)]):
            for text in txt_records(self.resolver, f"_dmarc.{name}"):
                tags = parse_dmarc(text)
                if tags is not None:
                    return tags
        return None

    def _arc(self, raw: bytes) -> MethodResult:
        lookup = _TxtLookup(self.resolver)
        try:
            cv, _, _ = dkim.arc_verify(raw, logger=_SILENT, dnsfunc=lookup)
        except dkim.DKIMException:
            return MethodResult("arc", "fail")
        if lookup.temporary:
            return MethodResult("arc", "temperror")
        return MethodResult("arc", "pass" if cv == dkim.CV_Pass else "fail")


class _TxtLookup:
    """dkimpy's `dnsfunc`: the TXT record through our resolver; remembers a temporary failure."""

    def __init__(self, resolver: dns.resolver.Resolver):
        self.resolver = resolver
        self.temporary = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes:
        try:
            texts = txt_records(self.resolver, name.decode("ascii", "replace"))
        except DnsTemporaryError:
            self.temporary = True
            return b""
        return texts[0].encode("utf-8") if texts else b""
