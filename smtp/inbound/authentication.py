"""What this hop can vouch for about a message it received (RFC 8601 Authentication-Results): SPF of the
connecting address, the sender's DKIM signatures, DMARC alignment of the From domain, and an ARC chain
that came with the message. `arc.py` seals these results so that a receiver trusting us can still use
them after the forward broke the sender's SPF alignment.

DNS goes through the resolver given (inbound: a cached one with a time budget per message); a lookup that
fails makes that method `temperror`, never an exception. The results travel with the spooled message
(`to_json`), so the worker adds our header and seals it without asking DNS again.
"""

from __future__ import annotations

import binascii
import ipaddress
import json
import logging
from dataclasses import dataclass

import dkim
import dns.resolver
from dkim.util import parse_tag_value

from mailferry.dns_lookup import DnsTemporaryError, txt_records
from mailferry.org_domain import aligned, organisational_domain
from mailferry.spf import SpfEvaluator
from smtp.delivery.signing import parse
from smtp.from_rewrite import field_name, from_addresses, split_message

from .dkim_verify import Message, verify

MAX_SIGNATURES = 5  # DKIM signatures verified per message; more are reported as policy (RFC 6376 6.1)
_SILENT = logging.getLogger("smtp.inbound.authentication.dkimpy")
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
    from_domain: str = ""
    dmarc_policy: str = ""  # what the From domain publishes for it: reject | quarantine | none | "" (no record)
    dkim_aligned: bool = False  # a DKIM signature aligned with the From domain passed
    spf_domain: str = ""  # the domain SPF was evaluated for (MAIL FROM's, or HELO's for a null sender)

    @property
    def temporary(self) -> bool:
        """Some answer was unknown (DNS timeout or SERVFAIL): nothing may be decided from these results."""
        return any(r.result == "temperror" for r in self.results)

    def dkim_pass_for(self, domain: str) -> bool:
        """A DKIM signature of `domain`'s organisational domain passed (a DSN to that domain is safe)."""
        return any(r.method == "dkim" and r.result == "pass" and aligned(dict(r.properties).get("header.d", ""), domain)
                   for r in self.results)

    def to_json(self) -> str:
        return json.dumps({"id": self.authserv_id, "from": self.from_domain, "p": self.dmarc_policy,
                           "dkim_aligned": self.dkim_aligned, "spf_domain": self.spf_domain,
                           "results": [[r.method, r.result, [list(p) for p in r.properties]] for r in self.results]})

    @classmethod
    def from_json(cls, text: str) -> AuthResults:
        data = json.loads(text)
        results = tuple(MethodResult(m, r, tuple(tuple(p) for p in props)) for m, r, props in data["results"])
        return cls(data["id"], results, data.get("from", ""), data.get("p", ""), data.get("dkim_aligned", False),
                   data.get("spf_domain", ""))

    def header(self) -> bytes:
        """`Authentication-Results: <authserv-id>; method=result ...` folded one method per line, CRLF."""
        body = ";\r\n\t".join([self.authserv_id, *(r.text() for r in self.results)] or [self.authserv_id])
        if not self.results:
            body += "; none"
        return f"Authentication-Results: {body}\r\n".encode("utf-8", "replace")

    def result(self, method: str) -> str | None:
        return next((r.result for r in self.results if r.method == method), None)


def parse_dmarc(text: str) -> dict[str, str] | None:
    """The tags of a DMARC record (lower-cased), or None when `text` is not one."""
    if not text.lower().startswith("v=dmarc1"):
        return None
    pairs = (part.strip().split("=", 1) for part in text.split(";") if "=" in part)
    return {k.strip().lower(): v.strip().lower() for k, v in pairs}


def header_values(raw: bytes, name: bytes) -> list[bytes]:
    """dkimpy's view of the header fields called `name` (lower case); only the header block is parsed."""
    try:
        headers, _ = parse(raw)
    except dkim.MessageFormatError:  # dkimpy could not verify any of them either
        return []
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
        message = _parsed(raw)  # once: the DKIM signatures and the ARC check share it
        spf_domain = mail_from.rpartition("@")[2].lower() if mail_from else helo.lower()
        spf = self._spf(spf_domain, mail_from, peer_ip, helo)
        signatures = self._dkim(message) if message else _unreadable_signatures(raw)
        domain = from_domain(raw)
        dmarc, policy, dkim_aligned = self._dmarc(domain, spf_domain if mail_from else "", spf, signatures)
        results = [spf, *signatures, dmarc]
        if message and message.values(b"arc-seal"):
            results.append(self._arc(raw))
        return AuthResults(self.authserv_id, tuple(results), domain, policy, dkim_aligned, spf_domain)

    def _spf(self, domain: str, mail_from: str, peer_ip: str, helo: str) -> MethodResult:
        prop = ("smtp.mailfrom", mail_from) if mail_from else ("smtp.helo", helo)
        try:
            ipaddress.ip_address(peer_ip)
        except ValueError:
            return MethodResult("spf", "none", (prop,))
        if not domain:
            return MethodResult("spf", "none", (prop,))
        return MethodResult("spf", self.spf.check_host(peer_ip, domain, mail_from or None).result, (prop,))

    def _dkim(self, message: Message) -> list[MethodResult]:
        signatures = message.values(b"dkim-signature")
        checked = [self._one_dkim(message, i, value) for i, value in enumerate(signatures[:MAX_SIGNATURES])]
        return checked + [MethodResult("dkim", "policy", (("reason", "too-many-signatures"),))
                          for _ in signatures[MAX_SIGNATURES:]] or [MethodResult("dkim", "none")]

    def _one_dkim(self, message: Message, index: int, value: bytes) -> MethodResult:
        try:
            tags = parse_tag_value(value)
        except dkim.InvalidTagValueList:
            return MethodResult("dkim", "permerror")
        props = (("header.d", tags.get(b"d", b"").decode("ascii", "replace")),
                 ("header.s", tags.get(b"s", b"").decode("ascii", "replace")))
        lookup = _TxtLookup(self.resolver)
        try:
            ok = verify(message, index, lookup, logger=_SILENT)
        except (dkim.DKIMException, binascii.Error):  # binascii: a bh= dkimpy cannot decode
            ok = False
        if lookup.temporary:
            return MethodResult("dkim", "temperror", props)
        return MethodResult("dkim", "pass" if ok else "fail", props)

    def _dmarc(self, domain: str, mail_from_domain: str, spf: MethodResult,
               signatures: list[MethodResult]) -> tuple[MethodResult, str, bool]:
        """(the dmarc result, the policy published for `domain`, whether an aligned DKIM signature passed).
        `mail_from_domain` is "" for a null sender: SPF of the HELO name never aligns."""
        if not domain:
            return MethodResult("dmarc", "none"), "", False
        prop = (("header.from", domain),)
        try:
            found = self._dmarc_record(domain)
        except DnsTemporaryError:
            return MethodResult("dmarc", "temperror", prop), "", False
        if found is None:
            return MethodResult("dmarc", "none", prop), "", False
        tags, policy = found
        dkim_aligned = any(s.result == "pass" and aligned(dict(s.properties).get("header.d", ""), domain,
                                                           tags.get("adkim", "r")) for s in signatures)
        passed = dkim_aligned or (spf.result == "pass" and aligned(mail_from_domain, domain, tags.get("aspf", "r")))
        return MethodResult("dmarc", "pass" if passed else "fail", prop), policy, dkim_aligned

    def _dmarc_record(self, domain: str) -> tuple[dict[str, str], str] | None:
        """The record's tags and the policy that applies to `domain`: a subdomain without a record of its own
        takes the organisational domain's `sp`, falling back to its `p` (RFC 7489 6.6.3)."""
        organisational = organisational_domain(domain)
        for name in dict.fromkeys([domain, organisational]):
            for text in txt_records(self.resolver, f"_dmarc.{name}"):
                tags = parse_dmarc(text)
                if tags is not None:
                    inherited = name != domain
                    policy = tags.get("sp", tags.get("p", "none")) if inherited else tags.get("p", "none")
                    return tags, policy if policy in ("reject", "quarantine") else "none"
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


def _parsed(raw: bytes) -> Message | None:
    """The message as dkimpy reads it; None when it cannot read the header block (a line that is no field)."""
    try:
        return Message.parse(raw)
    except dkim.MessageFormatError:
        return None


def _unreadable_signatures(raw: bytes) -> list[MethodResult]:
    """dkim=permerror for each DKIM-Signature of a header block dkimpy cannot read (no verifier could), none
    when it has none."""
    fields, _ = split_message(raw)
    count = min(MAX_SIGNATURES, sum(1 for f in fields if field_name(f) == "dkim-signature"))
    return [MethodResult("dkim", "permerror")] * count or [MethodResult("dkim", "none")]


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
