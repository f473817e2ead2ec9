"""The daily quarantine digest: each owner with mail quarantined since their last digest gets one message
listing it (sender, subject, domain, why) with the link to each domain's quarantine page. Never the content.

The digest of a day covers what was received from the previous digest's cutoff (stored as that notice's
created_at) to this one's; nothing is sent to an owner with nothing new or who turned digests off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import LargeBinary, func, select, update
from sqlalchemy.orm import Session

from mailferry.control_chars import one_line
from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import Delivery, Domain, Message, Notification, User, utcnow
from mailferry.models.message import QUARANTINED
from mailferry.models.notification import QUARANTINE_DIGEST
from mailferry.notifications import notify, wants
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage, dispatch
from mailferry.system_mail.templates import render

from . import notice_links
from .quarantine import from_header

logger = logging.getLogger("mailferry.quarantine_digest")
LISTED = 50  # messages named in one digest; the rest are counted
HEADER_BYTES = 16384  # enough of the raw message for its From header; the body is never read
# Mail spooled this close to the run waits for the next digest: its commit may still be in flight.
SETTLE = timedelta(minutes=1)


@dataclass(frozen=True)
class HeldItem:
    received_at: datetime
    sender: str
    subject: str
    reason: str


@dataclass
class DomainSection:
    name: str
    url: str
    items: list[HeldItem]


def digest_key(now: datetime) -> str:
    return f"digest:{now.date().isoformat()}"


def send_digests(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Queue today's digests (one transaction per owner), dispatch them; how many were sent."""
    now = now or utcnow()
    with db.session() as session:
        owners = list(session.execute(select(User.id, User.notification_prefs).where(
            User.active, User.id.in_(select(Domain.owner_id)))))
    queued = []
    for owner_id, prefs in owners:
        if not wants(prefs, QUARANTINE_DIGEST):
            continue
        with db.session() as session:
            message_id = _digest_for(session, settings, owner_id, now)
        if message_id:
            queued.append(message_id)
    dispatch(settings, queued)
    if queued:
        log(logger, logging.INFO, "quarantine digests queued", count=len(queued), message_id=queued[0])
    return len(queued)


def _digest_for(session: Session, settings: Settings, owner_id: int, now: datetime) -> str | None:
    cutoff = now - SETTLE
    since = session.scalar(select(func.max(Notification.created_at))
                           .where(Notification.user_id == owner_id, Notification.kind == QUARANTINE_DIGEST))
    held = _held(owner_id, since, cutoff)
    total = session.scalar(select(func.count()).select_from(held.subquery()))
    if not total:
        return None
    sections: dict[int, DomainSection] = {}
    for row in session.execute(held.order_by(Message.received_at, Message.id).limit(LISTED)):
        section = sections.setdefault(row.domain_id, DomainSection(
            row.domain_name, notice_links.quarantine_page(settings, row.domain_id), []))
        section.items.append(HeldItem(row.received_at, one_line(from_header(row.head or b"") or row.mail_from or "<>"),
                                      one_line(row.subject) or "(no subject)", one_line(row.filter_reason)))
    key = digest_key(now)
    message_id = notify(session.connection(), settings, owner_id, QUARANTINE_DIGEST, key,
                        _message(settings, total, list(sections.values())))
    if message_id:  # the next digest starts where this one's listing ended
        session.execute(update(Notification).where(Notification.user_id == owner_id, Notification.kind ==
                                                   QUARANTINE_DIGEST, Notification.key == key).values(created_at=cutoff))
    return message_id


def _held(owner_id: int, since: datetime | None, cutoff: datetime):
    """The owner's quarantined messages received in [since, cutoff), once per (message, domain)."""
    pairs = (select(Delivery.message_id, Delivery.domain_id).distinct()
             .join(Domain, Domain.id == Delivery.domain_id).where(Domain.owner_id == owner_id).subquery())
    query = (select(Message.id, Message.received_at, Message.mail_from, Message.subject, Message.filter_reason,
                    Domain.id.label("domain_id"), Domain.name.label("domain_name"),
                    func.substr(Message.raw, 1, HEADER_BYTES, type_=LargeBinary).label("head"))
             .join(pairs, pairs.c.message_id == Message.id).join(Domain, Domain.id == pairs.c.domain_id)
             .where(Message.state == QUARANTINED, Message.received_at < cutoff))
    return query.where(Message.received_at >= since) if since is not None else query


def _message(settings: Settings, total: int, sections: list[DomainSection]) -> SystemMessage:
    listed = sum(len(s.items) for s in sections)
    text, html = render(QUARANTINE_DIGEST, total=total, more=total - listed, sections=sections,
                        keep_days=settings.QUARANTINE_DAYS,
                        settings_url=notice_links.notification_settings(settings))
    subject = f"Quarantine: {total} new message{'s' if total != 1 else ''} held for you"
    return SystemMessage(to="", subject=subject, text=text, html=html, kind=QUARANTINE_DIGEST)
