"""SPF evaluation (RFC 7208 check_host) for one IP: include/redirect followed, lookup and void limits enforced.

Verification asks "would this server's address pass?", which string matching cannot answer
(an `include:` or `mx` may or may not cover it). `ptr` is never matched (deprecated, RFC 7208 5.5).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import dns.resolver

from .dns_lookup import DnsTemporaryError, host_addresses, mx_records, txt_records

MAX_LOOKUPS = 10  # RFC 7208 4.6.4: include, a, mx, ptr, exists and redirect count
MAX_VOID_LOOKUPS = 2
MAX_MX_HOSTS = 10
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?(?:/(\d+))?(?://(\d+))?$", re.I)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.I)
_MACRO = re.compile(r"%(?:\{([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)\}|(.))", re.I)


@dataclass
class SpfResult:
    result: str  # pass | fail | softfail | neutral | none | permerror | temperror
    why: str
    record: str = ""
    mechanism: str = ""
    lookups: int = 0


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


@dataclass
class _State:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    lookups: int = 0
    voids: int = 0
    chain: list[str] = field(default_factory=list)


def spf_records(txts: list[str]) -> list[str]:
    """The TXT strings that are SPF records: exactly 'v=spf1' followed by a space or the end."""
    return [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


class SpfEvaluator:
    def __init__(self, resolver: dns.resolver.Resolver, max_lookups: int = MAX_LOOKUPS):
        self.resolver = resolver
        self.max_lookups = max_lookups

    def check_host(self, ip: str, domain: str, sender: str | None = None) -> SpfResult:
        state = _State(ip=ipaddress.ip_address(ip), sender=sender or f"postmaster@{domain}")
        try:
            result, record, mechanism = self._check(state, domain.lower().rstrip("."))
        except _PermError as exc:
            return SpfResult("permerror", str(exc), lookups=state.lookups)
        except _TempError as exc:
            return SpfResult("temperror", str(exc), lookups=state.lookups)
        if result == "none":
            return SpfResult("none", f"{domain} publishes no SPF record", lookups=state.lookups)
        via = f" via {' -> '.join(state.chain)}" if state.chain else ""
        why = f"{ip} gets {result} from '{mechanism}'{via}" if mechanism else f"{ip} matched nothing: {result}"
        return SpfResult(result, why, record, mechanism, state.lookups)

    # ---- one record ----

    def _check(self, state: _State, domain: str, role: str = "") -> tuple[str, str, str]:
        """role: "" for the domain asked about, else "include" or "redirect" (where no record is a permerror)."""
        records = spf_records(self._txt(domain))
        if not records:
            if not role:
                return "none", "", ""
            raise _PermError(f"{domain} ({role} target) publishes no SPF record")
        if len(records) > 1:
            raise _PermError(f"{domain} publishes {len(records)} SPF records; receivers treat that as permerror")
        record = records[0]
        terms = record.split()[1:]
        redirect = None
        for term in terms:
            modifier = _MODIFIER.match(term)
            if modifier:
                if modifier.group(1).lower() == "redirect":
                    if redirect is not None:
                        raise _PermError(f"{domain}: more than one redirect= modifier")
                    redirect = modifier.group(2)
                continue
            qualifier, matched = self._mechanism(state, domain, term)
            if matched:
                return QUALIFIERS[qualifier or "+"], record, term
        if redirect is not None and not any(t.lower().lstrip("+-~?") == "all" for t in terms):
            target = self._expand(redirect, state, domain)
            self._count(state)
            state.chain.append(f"redirect={target}")
            result, _, mechanism = self._check(state, target, "redirect")
            return result, record, mechanism
        return "neutral", record, ""

    def _mechanism(self, state: _State, domain: str, term: str) -> tuple[str, bool]:
        match = _TERM.match(term)
        if not match:
            raise _PermError(f"{domain}: cannot parse SPF term {term!r}")
        qualifier, name, arg, cidr4, cidr6 = match.groups()
        name = name.lower()
        handler = getattr(self, f"_m_{name}", None)
        if handler is None:
            raise _PermError(f"{domain}: unknown SPF mechanism {name!r}")
        target = self._expand(arg, state, domain) if arg else domain
        return qualifier, handler(state, domain, target, arg, cidr4, cidr6)

    # ---- mechanisms: each returns whether it matches ----

    def _m_all(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        return True

    def _m_ip4(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        return self._in_network(state.ip, arg, cidr4, 4, domain)

    def _m_ip6(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        return self._in_network(state.ip, arg, cidr4, 6, domain)

    def _m_a(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        self._count(state)
        return self._host_matches(state, target, cidr4, cidr6)

    def _m_mx(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        self._count(state)
        hosts = [h for _, h in self._dns(state, mx_records, target) if h]
        if len(hosts) > MAX_MX_HOSTS:
            raise _PermError(f"{target} has more than {MAX_MX_HOSTS} MX hosts")
        return any(self._host_matches(state, host, cidr4, cidr6, count_void=False) for host in hosts)

    def _m_include(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        if not arg:
            raise _PermError(f"{domain}: include needs a domain")
        self._count(state)
        state.chain.append(f"include:{target}")
        result, _, _ = self._check(state, target, "include")
        if result == "pass":
            return True
        state.chain.pop()
        return False

    def _m_exists(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        if not arg:
            raise _PermError(f"{domain}: exists needs a domain")
        self._count(state)
        return bool(self._dns(state, host_addresses, target, "A"))

    def _m_ptr(self, state, domain, target, arg, cidr4, cidr6) -> bool:
        self._count(state)
        return False

    # ---- helpers ----

    def _host_matches(self, state: _State, host: str, cidr4, cidr6, count_void: bool = True) -> bool:
        v6 = state.ip.version == 6
        prefix = int(cidr6 if v6 else cidr4) if (cidr6 if v6 else cidr4) else (128 if v6 else 32)
        addresses = self._dns(state, host_addresses, host, "AAAA" if v6 else "A", count_void=count_void)
        for address in addresses:
            if state.ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False):
                return True
        return False

    @staticmethod
    def _in_network(ip, arg: str | None, cidr: str | None, version: int, domain: str) -> bool:
        try:
            network = ipaddress.ip_network(f"{arg}/{cidr}" if cidr else arg, strict=False)
        except (ValueError, TypeError):
            raise _PermError(f"{domain}: bad ip{version} value {arg!r}") from None
        if network.version != version:
            raise _PermError(f"{domain}: ip{version}:{arg} is not an IPv{version} network")
        return ip.version == version and ip in network

    def _count(self, state: _State) -> None:
        state.lookups += 1
        if state.lookups > self.max_lookups:
            raise _PermError(f"more than {self.max_lookups} DNS lookups (RFC 7208 4.6.4): the record is too deep")

    def _txt(self, domain: str) -> list[str]:
        try:
            return txt_records(self.resolver, domain)
        except DnsTemporaryError as exc:
            raise _TempError(str(exc)) from None

    def _dns(self, state: _State, query, name: str, *args, count_void: bool = True) -> list:
        try:
            answers = query(self.resolver, name, *args)
        except DnsTemporaryError as exc:
            raise _TempError(str(exc)) from None
        if not answers and count_void:
            state.voids += 1
            if state.voids > MAX_VOID_LOOKUPS:
                raise _PermError(f"more than {MAX_VOID_LOOKUPS} lookups found nothing (RFC 7208 4.6.4)")
        return answers

    def _expand(self, spec: str, state: _State, domain: str) -> str:
        """RFC 7208 section 7 macros in a domain-spec."""
        if "%" not in spec:
            return spec.lower().rstrip(".")
        local, _, sender_domain = state.sender.rpartition("@")

        def value_of(letter: str) -> str:
            letter = letter.lower()
            if letter == "i":
                if state.ip.version == 6:
                    return ".".join(state.ip.exploded.replace(":", ""))
                return str(state.ip)
            return {"s": state.sender, "l": local or "postmaster", "o": sender_domain, "d": domain,
                    "h": domain, "v": "ip6" if state.ip.version == 6 else "in-addr", "p": "unknown"}.get(letter, "")

        def replace(match: re.Match) -> str:
            letter, digits, reverse, delimiters, escape = match.groups()
            if escape is not None:
                literal = {"%": "%", "_": " ", "-": "%20"}.get(escape)
                if literal is None:
                    raise _PermError(f"{domain}: bad SPF macro '%{escape}'")
                return literal
            parts = re.split("[" + re.escape(delimiters or ".") + "]", value_of(letter))
            if reverse:
                parts.reverse()
            if digits:
                if int(digits) == 0:
                    raise _PermError(f"{domain}: SPF macro keeps zero labels")
                parts = parts[-int(digits):]
            return ".".join(parts)

        expanded = _MACRO.sub(replace, spec)
        return expanded.lower().rstrip(".")
