"""Delivery worker: `python worker.py [--burst]` (settings from the environment / .env).

Besides deliveries it runs the periodic jobs: the reconciler, the daily DNS re-verification of every
domain (enqueued by one worker per REVERIFY_INTERVAL, run by whichever worker takes it), the hourly
purge of quarantined mail older than QUARANTINE_DAYS, and the daily owner notices (quarantine digest, DKIM
rotation reminders), the same way."""

from app.services.scheduling import (
    enqueue_daily_notices_if_due,
    enqueue_quarantine_purge_if_due,
    enqueue_reverify_if_due,
)
from smtp.delivery.runner import main

PERIODIC = (enqueue_reverify_if_due, enqueue_quarantine_purge_if_due, enqueue_daily_notices_if_due)

if __name__ == "__main__":
    main(periodic=PERIODIC)
