"""The "a DNS record broke" notice: once per break of one check of one domain (Domain.broken_since), to the
domain's owner, naming the record, what was expected and what was found.

A break is keyed by its start, so a record that recovers and breaks again is announced again. A DNS timeout is
never a break (verification._update_broken_since leaves broken_since alone), so it is never announced.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailferry.models import Domain
from mailferry.models.notification import DNS_BROKEN
from mailferry.notifications import notify
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage
from mailferry.system_mail.templates import render

from . import notice_links

CHECK_LABELS = {"ownership": "ownership TXT", "mx": "MX", "spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC"}


def notice_key(domain_id: int, check: str, broken_since: str) -> str:
    return f"domain:{domain_id}:{check}:{broken_since}"


def notify_broken(session: Session, settings: Settings, domain: Domain, records: list) -> list[str]:
    """Queue, in the session's transaction, a notice for each break of `domain` not announced yet; the message ids
    to dispatch after the commit. `records`: verification.expected_records of the domain."""
    queued = []
    for check, since in sorted((domain.broken_since or {}).items()):
        message = _message(settings, domain, check, since, records)
        message_id = notify(session.connection(), settings, domain.owner_id, DNS_BROKEN,
                            notice_key(domain.id, check, since), message, domain.id)
        if message_id:
            queued.append(message_id)
    return queued


def _result(domain: Domain, check: str) -> dict:
    """The stored result of `check`; after a timeout, the last definite one (what made it broken)."""
    stored = (domain.check_results or {}).get(check) or {}
    if stored.get("temporary") and stored.get("last_known"):
        return {**stored, **stored["last_known"]}
    return stored


def _message(settings: Settings, domain: Domain, check: str, since: str, records: list) -> SystemMessage:
    result = _result(domain, check)
    record = next((r for r in records if r.check == check), None)
    label = CHECK_LABELS.get(check, check)
    values = {
        "domain": domain.name, "label": label, "since": since.replace("T", " ").rstrip("Z")[:16] + " UTC",
        "record_type": record.type if record else "", "record_name": record.name if record else "",
        "expected": result.get("expected") or (record.value if record else ""),
        "found": list(result.get("found") or []), "why": result.get("why") or "",
        "domain_url": notice_links.domain_page(settings, domain.id),
        "settings_url": notice_links.notification_settings(settings),
    }
    text, html = render(DNS_BROKEN, **values)
    return SystemMessage(to="", subject=f"{domain.name}: the {label} record stopped working", text=text,
                         html=html, kind=DNS_BROKEN)
