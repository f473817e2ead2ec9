"""Periodic service jobs the worker triggers: at most one run per interval across every worker process."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from mailferry.settings import Settings

from .verification import REVERIFY_JOB

REVERIFY_LOCK = "mailferry:reverify:last"
REVERIFY_JOB_ID = "reverify-domains"


def enqueue_reverify_if_due(redis: Redis, queue: Queue, settings: Settings) -> bool:
    """Enqueue the daily DNS re-verification unless some worker did so within REVERIFY_INTERVAL.
    Call it from the worker's periodic loop; True when this call enqueued the job."""
    if not redis.set(REVERIFY_LOCK, "1", nx=True, ex=max(1, settings.REVERIFY_INTERVAL)):
        return False
    queue.enqueue_call(REVERIFY_JOB, job_id=REVERIFY_JOB_ID, timeout=3600, result_ttl=86400, failure_ttl=7 * 86400)
    return True
