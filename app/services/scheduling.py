"""Periodic service jobs the worker triggers: at most one run per interval across every worker process."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from mailferry.retention import RETENTION_JOB
from mailferry.settings import Settings

from .daily_notices import DAILY_NOTICES_JOB
from .delay_warnings import DELAY_WARNING_JOB
from .quarantine import PURGE_JOB
from .verification import REVERIFY_JOB

REVERIFY_LOCK = "mailferry:reverify:last"
REVERIFY_JOB_ID = "reverify-domains"
PURGE_LOCK = "mailferry:quarantine-purge:last"
PURGE_JOB_ID = "purge-quarantine"
PURGE_INTERVAL = 3600  # seconds: quarantined mail is kept for days, an hour late is harmless
NOTICES_LOCK = "mailferry:daily-notices:last"
NOTICES_JOB_ID = "daily-notices"
NOTICES_INTERVAL = 86400  # seconds: one quarantine digest a day

RETENTION_LOCK = "mailferry:retention:last"
RETENTION_JOB_ID = "retention-sweep"
RETENTION_INTERVAL = 3600  # seconds: contents are kept for days, an hour late is harmless

DELAY_WARNING_LOCK = "mailferry:delay-warnings:last"
DELAY_WARNING_JOB_ID = "delay-warnings"
DELAY_WARNING_INTERVAL = 300  # seconds: a warning after hours of delay may come five minutes late


def _enqueue_once(redis: Redis, queue: Queue, lock: str, interval: int, func: str, job_id: str,
                  timeout: int) -> bool:
    """Enqueue `func` unless some worker took `lock` within `interval` seconds (SET NX EX across workers)."""
    if not redis.set(lock, "1", nx=True, ex=max(1, interval)):
        return False
    queue.enqueue_call(func, job_id=job_id, timeout=timeout, result_ttl=86400, failure_ttl=7 * 86400)
    return True


def enqueue_reverify_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the daily DNS re-verification unless some worker did so within REVERIFY_INTERVAL.
    Call it from the worker's periodic loop; True when this call enqueued the job."""
    return _enqueue_once(redis, queue, REVERIFY_LOCK, settings.REVERIFY_INTERVAL, REVERIFY_JOB, REVERIFY_JOB_ID, 3600)


def enqueue_quarantine_purge_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the purge of quarantined mail older than QUARANTINE_DAYS, at most once per PURGE_INTERVAL
    across every worker; True when this call enqueued the job."""
    return _enqueue_once(redis, queue, PURGE_LOCK, PURGE_INTERVAL, PURGE_JOB, PURGE_JOB_ID, 600)


def enqueue_daily_notices_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the quarantine digests and DKIM rotation reminders at most once per NOTICES_INTERVAL across
    every worker; True when this call enqueued the job."""
    return _enqueue_once(redis, queue, NOTICES_LOCK, NOTICES_INTERVAL, DAILY_NOTICES_JOB, NOTICES_JOB_ID, 1800)

def enqueue_retention_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the retention sweep (mailferry.retention: contents after RETENTION_DAYS, metadata after
    LOG_RETENTION_DAYS) at most once per RETENTION_INTERVAL across every worker; True when this call did."""
    return _enqueue_once(redis, queue, RETENTION_LOCK, RETENTION_INTERVAL, RETENTION_JOB, RETENTION_JOB_ID, 600)

def enqueue_delay_warnings_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the 'still trying' notices (app/services/delay_warnings.py) at most once per
    DELAY_WARNING_INTERVAL across every worker; True when this call enqueued the job."""
    return _enqueue_once(redis, queue, DELAY_WARNING_LOCK, DELAY_WARNING_INTERVAL, DELAY_WARNING_JOB,
                         DELAY_WARNING_JOB_ID, 600)
