"""The DKIM rotation reminder: once per key, to the domain's owner, when the active key of a domain is older
than DKIM_ROTATION_REMINDER_DAYS (0 = never), with how to rotate it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from mailferry.db import Database
from mailferry.models import DkimKey, Domain, utcnow
from mailferry.models.notification import DKIM_ROTATION
from mailferry.notifications import notify
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage, dispatch
from mailferry.system_mail.templates import render

from . import notice_links


def reminder_key(key_id: int) -> str:
    return f"dkim:{key_id}"


def send_rotation_reminders(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Queue a reminder for every old active key not reminded of yet, in one transaction; how many."""
    days = settings.DKIM_ROTATION_REMINDER_DAYS
    if not days:
        return 0
    now = now or utcnow()
    queued = []
    with db.session() as session:
        rows = session.execute(select(DkimKey, Domain).join(Domain, Domain.id == DkimKey.domain_id)
                               .where(DkimKey.active, DkimKey.created_at < now - timedelta(days=days))
                               .order_by(DkimKey.id)).all()
        for key, domain in rows:
            message_id = notify(session.connection(), settings, domain.owner_id, DKIM_ROTATION,
                                reminder_key(key.id), _message(settings, key, domain, now), domain.id)
            if message_id:
                queued.append(message_id)
    dispatch(settings, queued)
    return len(queued)


def _message(settings: Settings, key: DkimKey, domain: Domain, now: datetime) -> SystemMessage:
    text, html = render(DKIM_ROTATION, domain=domain.name, selector=key.selector, algorithm=key.algorithm,
                        created=key.created_at.strftime("%Y-%m-%d"), age=(now - key.created_at).days,
                        dkim_url=notice_links.dkim_section(settings, domain.id),
                        settings_url=notice_links.notification_settings(settings))
    return SystemMessage(to="", subject=f"{domain.name}: time to rotate the DKIM key", text=text, html=html,
                         kind=DKIM_ROTATION)
