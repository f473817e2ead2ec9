"""DNS verification of a domain: what to publish (expected_records) and live checks of what is published.

Record names (all under the customer's domain D):
  ownership  TXT  _mailferry.D          "mailferry-verification=<Domain.verify_token>"
  mx         MX   D                     10 <SMTP_HOSTNAME>
  spf        TXT  D                     "v=spf1 ip4:<SMTP_PUBLIC_IPS> ~all" or "v=spf1 a:<SMTP_HOSTNAME> ~all"
  dkim       TXT  <selector>._domainkey.D  "v=DKIM1; k=rsa|ed25519; p=<public key>" (each generated key)
  dmarc      TXT  _dmarc.D              "v=DMARC1; p=none"
Mail is accepted (Domain.verified) once ownership and MX pass, or an admin forced it. Verification never
revokes: a record that breaks later is recorded in Domain.broken_since (a DNS timeout must not bounce mail).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

import dns.resolver
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import DkimKey, Domain, utcnow
from mailferry.resolver import make_resolver
from mailferry.settings import Settings

from .access import SYSTEM, Actor
from .dkim_keys import active_key, txt_record
from .dns_lookup import DnsTemporaryError, host_addresses, mx_records, txt_records
from .errors import FORBIDDEN, ServiceError
from .spf import SpfEvaluator, spf_records

logger = logging.getLogger("mailferry.verification")

OWNERSHIP_PREFIX = "_mailferry"
TOKEN_PREFIX = "mailferry-verification="
MX_PREFERENCE = 10
DMARC_RECORD = "v=DMARC1; p=none"
CHECKS = ("ownership", "mx", "spf", "dkim", "dmarc")
REQUIRED = ("ownership", "mx")  # what must pass before mail for the domain is accepted
DMARC_POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class ExpectedRecord:
    check: str  # which CheckResult verifies it
    type: str  # TXT | MX
    name: str  # fully qualified, no trailing dot
    value: str  # what goes in the record's value box (for MX: the host, priority apart)
    priority: int | None = None
    note: str = ""

    @property
    def zone_line(self) -> str:
        """The record as a BIND zone-file line; TXT values split into 255-octet strings as DNS requires."""
        if self.type == "MX":
            return f"{self.name}. 3600 IN MX {self.priority} {self.value}."
        chunks = [self.value[i:i + 255] for i in range(0, len(self.value), 255)] or [""]
        quoted = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
        return f"{self.name}. 3600 IN TXT {quoted}"

    def to_dict(self) -> dict:
        return {**asdict(self), "zone_line": self.zone_line}


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


@dataclass
class VerificationReport:
    domain: str
    checked_at: datetime
    checks: list[CheckResult]
    verified: bool  # the domain's state after this run (may be true from an earlier pass or a force)
    forced: bool = False
    server_ips: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Ownership and MX passed in this run."""
        return all(c.ok for c in self.checks if c.required)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict:
        return {"domain": self.domain, "checked_at": self.checked_at.isoformat() + "Z", "passed": self.passed,
                "verified": self.verified, "forced": self.forced, "server_ips": self.server_ips,
                "checks": [c.to_dict() for c in self.checks]}


# ---- what to publish ----

def ownership_name(domain_name: str) -> str:
    return f"{OWNERSHIP_PREFIX}.{domain_name}"


def expected_spf(settings: Settings) -> str:
    ips = public_ips_setting(settings)
    if ips:
        terms = [f"ip{ipaddress.ip_address(ip).version}:{ip}" for ip in ips]
        return f"v=spf1 {' '.join(terms)} ~all"
    return f"v=spf1 a:{settings.SMTP_HOSTNAME} ~all"


def expected_records(domain: Domain, settings: Settings) -> list[ExpectedRecord]:
    """Every record the owner should publish, in the order the dashboard lists them."""
    name = domain.name
    records = [
        ExpectedRecord("ownership", "TXT", ownership_name(name), f"{TOKEN_PREFIX}{domain.verify_token}",
                       note="Proves you control the domain. Required."),
        ExpectedRecord("mx", "MX", name, settings.SMTP_HOSTNAME, MX_PREFERENCE,
                       note="Sends the domain's mail to this server. Required; remove other MX records."),
        ExpectedRecord("spf", "TXT", name, expected_spf(settings),
                       note="Authorises this server to send the forwarded mail. If the domain already has a "
                            "v=spf1 record, add this server's term to it instead of adding a second one."),
    ]
    for key in _keys(domain):
        record_name, value = txt_record(key, name)
        note = "Lets receivers check this server's signature." if key.active else \
            "New key, not signing yet: publish it, then switch to it."
        records.append(ExpectedRecord("dkim", "TXT", record_name, value, note=note))
    records.append(ExpectedRecord("dmarc", "TXT", f"_dmarc.{name}", DMARC_RECORD,
                                  note="Tells receivers what to do with mail that fails SPF and DKIM. "
                                       "Start with p=none; tighten later."))
    return records


def _keys(domain: Domain) -> list[DkimKey]:
    """Active key first, then pending ones newest first. Queried when attached, so keys added since the
    relationship was loaded are included."""
    session = object_session(domain)
    keys = list(session.scalars(select(DkimKey).where(DkimKey.domain_id == domain.id))) if session else \
        list(domain.dkim_keys)
    return sorted(keys, key=lambda k: (not k.active, -(k.id or 0)))


# ---- live checks ----

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


# ---- storing the outcome ----

def _update_broken_since(domain: Domain, checks: list[CheckResult], now: datetime) -> None:
    """A check that passed last time and fails now is broken since now; a pass clears it; an unknown
    (timeout) result changes nothing."""
    previous = domain.check_results or {}
    broken = dict(domain.broken_since or {})
    for check in checks:
        if check.temporary:
            continue
        if check.ok:
            broken.pop(check.name, None)
        elif check.name not in broken and previous.get(check.name, {}).get("ok"):
            broken[check.name] = now.isoformat() + "Z"
    domain.broken_since = broken


def _store(domain: Domain, checks: list[CheckResult], now: datetime) -> None:
    previous = domain.check_results or {}
    results = {}
    for check in checks:
        stored = check.to_dict()
        old = previous.get(check.name)
        if check.temporary and old and not old.get("temporary"):
            stored["last_known"] = {"ok": old.get("ok"), "found": old.get("found"), "why": old.get("why")}
        results[check.name] = stored
    domain.check_results = results
    domain.last_check_at = now


def verify_domain(session: Session, domain: Domain, settings: Settings, resolver: dns.resolver.Resolver | None = None,
                  *, force: bool = False, actor: Actor = SYSTEM) -> VerificationReport:
    """Run every check, store the results on the domain, and mark it verified when ownership and MX pass
    (or when an admin forces it)."""
    if force and not actor.is_admin:
        raise ServiceError(FORBIDDEN, "only an admin can force a domain to verified", "force")
    resolver = resolver or make_resolver(settings)
    now = utcnow()
    checks, ips = run_checks(session, domain, settings, resolver)
    _update_broken_since(domain, checks, now)
    _store(domain, checks, now)
    passed = all(c.ok for c in checks if c.required)
    if force:
        domain.force_verified = True
    if (passed or force) and not domain.verified:
        domain.verified = True
        domain.verified_at = now
    session.flush()
    report = VerificationReport(domain.name, now, checks, domain.verified, domain.force_verified, ips)
    log(logger, logging.INFO, "domain verified" if passed else "domain verification failed", domain=domain.name,
        passed=passed, verified=domain.verified, failing=[c.name for c in checks if not c.ok])
    return report


def stored_report(domain: Domain) -> VerificationReport | None:
    """The last run's results as a report (for pages that show them without querying DNS)."""
    if not domain.check_results or domain.last_check_at is None:
        return None
    checks = []
    for name in CHECKS:
        data = domain.check_results.get(name)
        if data:
            checks.append(CheckResult(name, bool(data.get("ok")), list(data.get("found") or []),
                                      data.get("expected", ""), data.get("why", ""), bool(data.get("temporary"))))
    return VerificationReport(domain.name, domain.last_check_at, checks, domain.verified, domain.force_verified)


def reverify_all(db: Database, settings: Settings, resolver: dns.resolver.Resolver | None = None) -> dict:
    """The daily job: re-run the checks of every domain, one transaction each, recording what broke."""
    resolver = resolver or make_resolver(settings)
    with db.session() as session:
        ids = list(session.scalars(select(Domain.id).order_by(Domain.id)))
    summary = {"checked": 0, "passed": 0, "errors": [], "newly_broken": {}}
    for domain_id in ids:
        try:
            with db.session() as session:
                domain = session.get(Domain, domain_id)
                if domain is None:
                    continue
                before = set(domain.broken_since or {})
                report = verify_domain(session, domain, settings, resolver)
                broken = sorted(set(domain.broken_since or {}) - before)
        except Exception as exc:  # one bad domain must not stop the others
            log(logger, logging.ERROR, "re-verification failed", domain_id=domain_id, error=repr(exc))
            summary["errors"].append({"domain_id": domain_id, "error": str(exc)})
            continue
        summary["checked"] += 1
        summary["passed"] += int(report.passed)
        if broken:
            summary["newly_broken"][report.domain] = broken
    return summary


def reverify_job() -> dict:
    """RQ entry point for the daily schedule (REVERIFY_JOB); builds its own settings and database."""
    from mailferry.settings import load_settings

    settings = load_settings()
    db = Database(settings.DATABASE_URL)
    try:
        return reverify_all(db, settings)
    finally:
        db.dispose()


REVERIFY_JOB = "app.services.verification.reverify_job"
