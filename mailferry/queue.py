"""Dispatch through RQ. The database is the queue of record; a job carries only a message id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import or_, select

from .db import Database
from .models import Message, utcnow
from .models.message import QUEUED

DELIVER_JOB = "smtp.delivery.job.deliver_message"  # dotted path: the enqueuer never imports the worker code
LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
JOB_TIMEOUT = 600


def job_id_for(message_id: str) -> str:
    return f"deliver-{message_id}"


def make_redis(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def get_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


def enqueue_messages(queue: Queue, message_ids: Iterable[str]) -> None:
    """Enqueue one delivery job per id in one Redis round trip (raises redis errors to the caller)."""
    datas = [
        Queue.prepare_data(DELIVER_JOB, args=(mid,), job_id=job_id_for(mid), timeout=JOB_TIMEOUT,
                           result_ttl=0, failure_ttl=7 * 86400)
        for mid in message_ids
    ]
    if datas:
        queue.enqueue_many(datas)


def has_live_job(redis: Redis, message_id: str) -> bool:
    try:
        job = Job.fetch(job_id_for(message_id), connection=redis)
    except Exception:  # NoSuchJobError, or a job Redis lost half of
        return False
    return job.get_status(refresh=False) in LIVE_STATES


def due_messages(db: Database, limit: int = 1000, grace: timedelta = timedelta(seconds=0)) -> list[str]:
    """Ids of messages not final, due now, and not leased by a live worker."""
    now = utcnow()
    with db.session() as s:
        rows = s.scalars(
            select(Message.id)
            .where(Message.state == QUEUED)
            .where(or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now - grace))
            .where(or_(Message.lease_until.is_(None), Message.lease_until < now))
            .order_by(Message.received_at)
            .limit(limit)
        )
        return list(rows)


def reconcile(db: Database, queue: Queue, grace: timedelta = timedelta(seconds=5)) -> list[str]:
    """Re-enqueue every due message that has no live job (Redis lost it, a worker died). Returns the ids."""
    lost = [mid for mid in due_messages(db, grace=grace) if not has_live_job(queue.connection, mid)]
    enqueue_messages(queue, lost)
    return lost
