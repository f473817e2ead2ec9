"""Delivery worker: `python worker.py [--burst]` (settings from the environment / .env).

Besides deliveries it runs the periodic jobs: the reconciler, and the daily DNS re-verification of every
domain (enqueued by one worker per REVERIFY_INTERVAL, run by whichever worker takes it)."""

from app.services.scheduling import enqueue_reverify_if_due
from smtp.delivery.runner import main

if __name__ == "__main__":
    main(periodic=[enqueue_reverify_if_due])
