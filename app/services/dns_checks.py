"""The five live DNS checks of a domain, each returning a CheckResult the dashboard can show as is.

ownership TXT token, MX -> SMTP_HOSTNAME, SPF evaluated for this server's addresses (spf.py), the active DKIM
public key compared, DMARC present (with the parent-domain tree walk). Timeouts are `temporary`, never a crash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

import dns.resolver
from sqlalchemy.orm import Session

from mailferry.dns_lookup import DnsTemporaryError, host_addresses, mx_records, txt_records
from mailferry.models import DkimKey, Domain
from mailferry.settings import Settings
from mailferry.spf import SpfEvaluator, spf_records

from .dkim_keys import active_key, txt_record

OWNERSHIP_PREFIX = "_mailferry"
TOKEN_PREFIX = "mailferry-verification="
MX_PREFERENCE = 10
DMARC_RECORD = "v=DMARC1; p=none"
CHECKS = ("ownership", "mx", "spf", "dkim", "dmarc")
REQUIRED = ("ownership", "mx")  # what must pass before mail for the domain is accepted
DMARC_POLICIES = ("none", "quarantine", "reject")


@dataclass
class CheckResult:
    name: str
    ok: bool
    found: list[str]
    expected: str
    why: str
    temporary: bool = False  # the DNS did not answer: unknown, not proven wrong

    @property
    def required(self) -> bool:
        return self.name in REQUIRED

    def to_dict(self) -> dict:
        return {**asdict(self), "required": self.required}


def ownership_name(domain_name: str) -> str:
    return f"{OWNERSHIP_PREFIX}.{domain_name}"


def expected_spf(settings: Settings) -> str:
    ips = public_ips_setting(settings)
    if ips:
        terms = [f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in ips]
        return f"v=spf1 {' '.join(terms)} ~all"
    return f"v=spf1 a:{settings.SMTP_HOSTNAME} ~all"


def public_ips_setting(settings: Settings) -> list[str]:
    raw = settings.SMTP_PUBLIC_IPS or ""
    return [ip.strip() for ip in raw.split(",") if ip.strip()]


def server_ips(settings: Settings, resolver: dns.resolver.Resolver) -> list[str]:
    """SMTP_PUBLIC_IPS, else the A and AAAA records of SMTP_HOSTNAME (raises DnsTemporaryError)."""
    configured = public_ips_setting(settings)
    if configured:
        return configured
    host = settings.SMTP_HOSTNAME
    return host_addresses(resolver, host, "A") + host_addresses(resolver, host, "AAAA")


def _temporary(name: str, expected: str, exc: DnsTemporaryError) -> CheckResult:
    return CheckResult(name, False, [], expected, f"{exc}; try again later", temporary=True)


def check_ownership(resolver, domain: Domain) -> CheckResult:
    record = ownership_name(domain.name)
    expected = f"{TOKEN_PREFIX}{domain.verify_token}"
    try:
        found = txt_records(resolver, record)
    except DnsTemporaryError as exc:
        return _temporary("ownership", expected, exc)
    if expected in (t.strip() for t in found):
        return CheckResult("ownership", True, found, expected, f"the token is published at {record}")
    if not found:
        return CheckResult("ownership", False, found, expected, f"no TXT record at {record}")
    return CheckResult("ownership", False, found, expected, f"the TXT records at {record} do not contain this "
                                                              "domain's token")


def check_mx(resolver, domain: Domain, settings: Settings) -> CheckResult:
    ours = settings.SMTP_HOSTNAME.lower().rstrip(".")
    expected = f"{MX_PREFERENCE} {ours}"
    try:
        records = mx_records(resolver, domain.name)
    except DnsTemporaryError as exc:
        return _temporary("mx", expected, exc)
    found = [f"{pref} {host or '.'}" for pref, host in records]
    if not records:
        return CheckResult("mx", False, found, expected, f"{domain.name} has no MX record")
    if any(host == "" for _, host in records):
        return CheckResult("mx", False, found, expected, f"{domain.name} publishes a null MX: it accepts no mail")
    mine = [pref for pref, host in records if host == ours]
    if not mine:
        return CheckResult("mx", False, found, expected, f"no MX record points to {ours}")
    rivals = [host for pref, host in records if host != ours and pref <= min(mine)]
    if rivals:
        return CheckResult("mx", False, found, expected,
                           f"{', '.join(rivals)} is preferred over or equal to {ours}: some mail would go there")
    backups = [host for _, host in records if host != ours]
    why = f"mail goes to {ours}" + (f" ({', '.join(backups)} only as backup)" if backups else "")
    return CheckResult("mx", True, found, expected, why)


def check_spf(resolver, domain: Domain, settings: Settings, ips: list[str]) -> CheckResult:
    expected = expected_spf(settings)
    try:
        found = spf_records(txt_records(resolver, domain.name))
    except DnsTemporaryError as exc:
        return _temporary("spf", expected, exc)
    if not found:
        return CheckResult("spf", False, found, expected, f"{domain.name} has no SPF (v=spf1) TXT record")
    if len(found) > 1:
        return CheckResult("spf", False, found, expected, f"{len(found)} SPF records: receivers treat that as an "
                                                          "error (permerror); merge them into one")
    if not ips:
        return CheckResult("spf", False, found, expected, f"cannot tell this server's address: set SMTP_PUBLIC_IPS "
                                                          f"or publish an A record for {settings.SMTP_HOSTNAME}")
    evaluator = SpfEvaluator(resolver)
    for ip in ips:
        result = evaluator.check_host(ip, domain.name)
        if result.result == "temperror":
            return CheckResult("spf", False, found, expected, f"{result.why}; try again later", temporary=True)
        if result.result != "pass":
            return CheckResult("spf", False, found, expected, _spf_advice(result.result, result.why, ip, settings))
    why = f"SPF passes for {', '.join(ips)}"
    if any(t.lower() in ("all", "+all") for t in found[0].split()):
        why += " (but '+all' lets any server on the internet send as this domain)"
    return CheckResult("spf", True, found, expected, why)


def _spf_advice(result: str, why: str, ip: str, settings: Settings) -> str:
    if result == "permerror":
        return f"the SPF record is broken (permerror): {why}"
    term = f"ip{ipaddress.ip_address(ip).version}:{ip}" if public_ips_setting(settings) else \
        f"a:{settings.SMTP_HOSTNAME}"
    return f"this server ({ip}) is not authorised: {why}; add '{term}' before the 'all' term"


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def check_dkim(resolver, session: Session, domain: Domain) -> CheckResult:
    key = active_key(session, domain.id)
    if key is None:
        return CheckResult("dkim", False, [], "", "no DKIM key yet: generate one, then publish its TXT record")
    record_name, expected = txt_record(key, domain.name)
    try:
        found = txt_records(resolver, record_name)
    except DnsTemporaryError as exc:
        return _temporary("dkim", expected, exc)
    dkim = [t for t in found if "p=" in t]
    if not dkim:
        return CheckResult("dkim", False, found, expected, f"no DKIM record at {record_name}")
    if len(dkim) > 1:
        return CheckResult("dkim", False, found, expected, f"{len(dkim)} DKIM records at {record_name}; keep one")
    return _compare_dkim(_tags(dkim[0]), key, record_name, found, expected)


def _compare_dkim(tags: dict, key: DkimKey, record_name: str, found: list[str], expected: str) -> CheckResult:
    if tags.get("v", "DKIM1") != "DKIM1":
        return CheckResult("dkim", False, found, expected, f"v={tags['v']} at {record_name}: must be DKIM1")
    if not tags.get("p"):
        return CheckResult("dkim", False, found, expected, f"the key at {record_name} is revoked (empty p=)")
    algorithm = "ed25519" if key.algorithm == "ed25519" else "rsa"
    if tags.get("k", "rsa").lower() != algorithm:
        return CheckResult("dkim", False, found, expected, f"k={tags.get('k', 'rsa')} published, the active key "
                                                           f"is {algorithm}")
    if tags["p"] != "".join(key.public_txt.split()):
        return CheckResult("dkim", False, found, expected, f"the public key at {record_name} is not the active "
                                                           f"key's (selector {key.selector}); republish it")
    return CheckResult("dkim", True, found, expected, f"the active key (selector {key.selector}) is published")


def _dmarc_at(resolver, name: str) -> tuple[list[str], list[str]]:
    found = txt_records(resolver, f"_dmarc.{name}")
    return found, [t for t in found if t.replace(" ", "").upper().startswith("V=DMARC1")]


def check_dmarc(resolver, domain: Domain) -> CheckResult:
    """The domain's own record, else the nearest parent's (the DMARCbis tree walk, without a public suffix list:
    it stops above the registrable-looking two last labels)."""
    record_name = f"_dmarc.{domain.name}"
    labels = domain.name.split(".")
    try:
        found, dmarc = _dmarc_at(resolver, domain.name)
        inherited_from = None
        for i in range(1, len(labels) - 1):
            if dmarc:
                break
            parent = ".".join(labels[i:])
            _, dmarc = _dmarc_at(resolver, parent)
            inherited_from = parent if dmarc else None
    except DnsTemporaryError as exc:
        return _temporary("dmarc", DMARC_RECORD, exc)
    if not dmarc:
        return CheckResult("dmarc", False, found, DMARC_RECORD, f"no DMARC record at {record_name}")
    if len(dmarc) > 1:
        return CheckResult("dmarc", False, found, DMARC_RECORD, f"{len(dmarc)} DMARC records at {record_name}: "
                                                                "receivers ignore them all; keep one")
    tags = _tags(dmarc[0])
    policy = (tags.get("sp") or tags.get("p", "")) if inherited_from else tags.get("p", "")
    if policy.lower() not in DMARC_POLICIES:
        return CheckResult("dmarc", False, found or dmarc, DMARC_RECORD, "the DMARC record has no valid p= policy "
                                                                         "(none, quarantine or reject)")
    if inherited_from:
        return CheckResult("dmarc", True, dmarc, DMARC_RECORD, f"inherited from _dmarc.{inherited_from}: "
                                                               f"policy {policy.lower()}")
    return CheckResult("dmarc", True, found, DMARC_RECORD, f"DMARC policy p={policy.lower()}")


def run_checks(session: Session, domain: Domain, settings: Settings,
               resolver: dns.resolver.Resolver) -> tuple[list[CheckResult], list[str]]:
    try:
        ips = server_ips(settings, resolver)
        spf = None
    except DnsTemporaryError as exc:
        ips, spf = [], _temporary("spf", expected_spf(settings), exc)
    checks = [
        check_ownership(resolver, domain),
        check_mx(resolver, domain, settings),
        spf or check_spf(resolver, domain, settings, ips),
        check_dkim(resolver, session, domain),
        check_dmarc(resolver, domain),
    ]
    return checks, ips
