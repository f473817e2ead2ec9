"""The daily notices job: the quarantine digests and the DKIM rotation reminders (the DNS notices come with the
re-verification, the bounce and delay notices with delivery)."""

from __future__ import annotations

import logging
from datetime import datetime

from mailferry.db import Database
from mailferry.logs import log
from mailferry.settings import Settings

from .dkim_reminders import send_rotation_reminders
from .jobs import run_with_database
from .quarantine_digest import send_digests

logger = logging.getLogger("mailferry.daily_notices")
TASKS = {"quarantine_digests": send_digests, "dkim_reminders": send_rotation_reminders}


def run_daily_notices(db: Database, settings: Settings, now: datetime | None = None) -> dict:
    """{task: how many notices it queued, or None when it failed}; one failing does not stop the other."""
    summary = {}
    for name, task in TASKS.items():
        try:
            summary[name] = task(db, settings, now)
        except Exception as exc:  # the next day's run tries again
            log(logger, logging.ERROR, "daily notices failed", task=name, error=repr(exc))
            summary[name] = None
    return summary


def daily_notices_job() -> dict:
    """RQ entry point for the daily schedule (DAILY_NOTICES_JOB); builds its own settings and database."""
    return run_with_database(run_daily_notices)


DAILY_NOTICES_JOB = "app.services.daily_notices.daily_notices_job"
