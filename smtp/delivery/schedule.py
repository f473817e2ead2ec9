"""Scheduling a message's next attempt through the RQ scheduler (Message.next_attempt_at stays the truth)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from rq import Queue

from mailferry.logs import log
from mailferry.queue import DELIVER_JOB, JOB_TIMEOUT, job_id_for

logger = logging.getLogger(__name__)


def schedule_message(queue: Queue, message_id: str, when: datetime) -> None:
    """Enqueue the message's job at `when` (naive UTC) under its usual job id."""
    if when.microsecond:  # RQ keeps whole seconds and would fire up to a second early
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    queue.enqueue_at(when.replace(tzinfo=timezone.utc), DELIVER_JOB, message_id, job_id=job_id_for(message_id),
                     job_timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=7 * 86400)


def schedule_followups(queue: Queue, followups: dict[str, datetime]) -> None:
    """Schedule (and forget) every pending follow-up; one Redis failing is left to the reconciler."""
    while followups:
        message_id, when = followups.popitem()
        try:
            schedule_message(queue, message_id, when)
        except RedisError as exc:
            log(logger, logging.WARNING, "could not schedule the next attempt", message_id=message_id,
                error=str(exc))
