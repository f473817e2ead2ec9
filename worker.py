"""Delivery worker: `python worker.py [--burst]` (settings from the environment / .env).

Besides deliveries it runs the periodic jobs: the reconciler, the daily DNS re-verification of every
domain (enqueued by one worker per REVERIFY_INTERVAL, run by whichever worker takes it), and, the same way,
the hourly purge of quarantined mail older than QUARANTINE_DAYS, the hourly retention sweep
(mailferry/retention.py), the daily owner notices (quarantine digest, DKIM rotation reminders) and every five
minutes the 'still trying' notices to owners whose mail is late by DELAY_WARNING_TIME."""

from app.services.scheduling import (
    enqueue_daily_notices_if_due,
    enqueue_delay_warnings_if_due,
    enqueue_quarantine_purge_if_due,
    enqueue_retention_if_due,
    enqueue_reverify_if_due,
)
from smtp.delivery.runner import main

PERIODIC = (enqueue_reverify_if_due, enqueue_quarantine_purge_if_due, enqueue_daily_notices_if_due,
            enqueue_retention_if_due, enqueue_delay_warnings_if_due)

if __name__ == "__main__":
    main(periodic=PERIODIC)
