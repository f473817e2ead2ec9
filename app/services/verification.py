"""DNS verification of a domain: what to publish (expected_records), running the checks (dns_checks.py), storing them.

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

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

import dns.resolver
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import DkimKey, Domain, utcnow
from mailferry.resolver import make_resolver
from mailferry.settings import Settings
from mailferry.system_mail import dispatch

from .access import SYSTEM, Actor
from .dkim_keys import txt_record
from .dns_checks import (  # noqa: F401  (CheckResult and the constants are part of this module's interface)
    CHECKS,
    DMARC_RECORD,
    MX_PREFERENCE,
    REQUIRED,
    TOKEN_PREFIX,
    CheckResult,
    expected_spf,
    ownership_name,
    run_checks,
)
from .dns_notices import notify_broken
from .domains import taken_elsewhere
from .errors import FORBIDDEN, ServiceError
from .jobs import run_with_database

logger = logging.getLogger("mailferry.verification")


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
class VerificationReport:
    domain: str
    checked_at: datetime
    checks: list[CheckResult]
    verified: bool  # the domain's state after this run (may be true from an earlier pass or a force)
    forced: bool = False
    server_ips: list[str] = field(default_factory=list)
    taken_elsewhere: bool = False  # the checks passed, but another account verified the name first

    @property
    def passed(self) -> bool:
        """Ownership and MX passed in this run."""
        return all(c.ok for c in self.checks if c.required)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict:
        return {"domain": self.domain, "checked_at": self.checked_at.isoformat() + "Z", "passed": self.passed,
                "verified": self.verified, "forced": self.forced, "server_ips": self.server_ips,
                "taken_elsewhere": self.taken_elsewhere,
                "checks": [c.to_dict() for c in self.checks]}


# ---- what to publish ----


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


# ---- storing the outcome ----

def _last_known(domain: Domain, name: str) -> dict | None:
    """The newest definite (not timed-out) stored result of one check."""
    old = (domain.check_results or {}).get(name)
    if old and old.get("temporary"):
        return old.get("last_known")
    return {"ok": old.get("ok"), "found": old.get("found"), "why": old.get("why")} if old else None


def _update_broken_since(domain: Domain, checks: list[CheckResult], now: datetime) -> None:
    """A check that passed last time and fails now is broken since now; a pass clears it; an unknown
    (timeout) result changes nothing."""
    broken = dict(domain.broken_since or {})
    for check in checks:
        if check.temporary:
            continue
        if check.ok:
            broken.pop(check.name, None)
        elif check.name not in broken and (_last_known(domain, check.name) or {}).get("ok"):
            broken[check.name] = now.isoformat() + "Z"
    domain.broken_since = broken


def _store(domain: Domain, checks: list[CheckResult], now: datetime) -> None:
    results = {}
    for check in checks:
        stored = check.to_dict()
        last = _last_known(domain, check.name)
        if check.temporary and last:
            stored["last_known"] = last
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
    taken = False
    if (passed or force) and not domain.verified:
        taken = not _take_name(session, domain, now)
        if taken:
            domain.force_verified = False  # not even an admin gives one name to two accounts
    session.flush()
    report = VerificationReport(domain.name, now, checks, domain.verified, domain.force_verified, ips,
                                taken_elsewhere=taken)
    log(logger, logging.INFO, "domain verified" if passed else "domain verification failed", domain=domain.name,
        passed=passed, verified=domain.verified, failing=[c.name for c in checks if not c.ok])
    return report


def _take_name(session: Session, domain: Domain, now: datetime) -> bool:
    """Marks this claim verified unless another account's claim of the name already is. Two claims verifying at
    once: the partial unique index lets one commit and the other's UPDATE fail, here, in a savepoint."""
    if taken_elsewhere(session, domain):
        return False
    try:
        with session.begin_nested():
            domain.verified, domain.verified_at = True, now
            session.flush()
    except IntegrityError:
        session.refresh(domain)
        return False
    return True


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
    """The daily job: re-run the checks of every domain, one transaction each, recording what broke and telling
    the owner about each break not announced yet (a break a dashboard check recorded included)."""
    resolver = resolver or make_resolver(settings)
    with db.session() as session:
        ids = list(session.scalars(select(Domain.id).order_by(Domain.id)))
    summary = {"checked": 0, "passed": 0, "errors": [], "newly_broken": {}, "notices": 0}
    notices: list[str] = []
    for domain_id in ids:
        try:
            with db.session() as session:
                domain = session.get(Domain, domain_id)
                if domain is None:
                    continue
                before = set(domain.broken_since or {})
                report = verify_domain(session, domain, settings, resolver)
                broken = sorted(set(domain.broken_since or {}) - before)
                queued = notify_broken(session, settings, domain, expected_records(domain, settings))
        except Exception as exc:  # one bad domain must not stop the others
            log(logger, logging.ERROR, "re-verification failed", domain_id=domain_id, error=repr(exc))
            summary["errors"].append({"domain_id": domain_id, "error": str(exc)})
            continue
        notices += queued  # committed with the domain's new state
        summary["checked"] += 1
        summary["passed"] += int(report.passed)
        if broken:
            summary["newly_broken"][report.domain] = broken
    dispatch(settings, notices)
    summary["notices"] = len(notices)
    return summary


def reverify_job() -> dict:
    """RQ entry point for the daily schedule (REVERIFY_JOB); builds its own settings and database."""
    return run_with_database(reverify_all)


REVERIFY_JOB = "app.services.verification.reverify_job"
