"""The reconciler: Redis may lose jobs and workers may die, the database knows what is still owed."""

from __future__ import annotations

from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import select

from mailferry.db import Database
from mailferry.models import Message, utcnow
from mailferry.models.message import QUEUED
from mailferry.queue import enqueue_messages, job_id_for, reconcile

WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def expired_leases(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Message.id).where(Message.state == QUEUED, Message.lease_until < utcnow())))


def _waiting(queue: Queue, message_id: str) -> bool:
    try:
        job = Job.fetch(job_id_for(message_id), connection=queue.connection)
    except Exception:  # NoSuchJobError, or a half-lost job
        return False
    return job.get_status(refresh=False) in WAITING


def recover(db: Database, queue: Queue) -> list[str]:
    """Re-enqueue due messages without a live job, and messages whose worker died holding the lease
    (their job still looks STARTED to RQ until its timeout passes). Returns the ids enqueued."""
    enqueued = reconcile(db, queue)
    orphans = [mid for mid in expired_leases(db) if mid not in enqueued and not _waiting(queue, mid)]
    enqueue_messages(queue, orphans)
    return enqueued + orphans
