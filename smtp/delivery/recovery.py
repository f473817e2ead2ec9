"""The reconciler: Redis may lose jobs, workers may die, the scheduler may be gone with a dead worker.
The database knows what is still owed; anything due without a job waiting in the queue is enqueued."""

from __future__ import annotations

from datetime import timedelta

from rq import Queue
from rq.job import Job, JobStatus

from mailferry.db import Database
from mailferry.queue import due_messages, enqueue_messages, job_id_for

GRACE = timedelta(seconds=5)  # lets a just-due scheduled job reach the queue before it counts as lost
WAITING = {JobStatus.QUEUED, JobStatus.DEFERRED}


def _waiting(queue: Queue, message_id: str) -> bool:
    try:
        job = Job.fetch(job_id_for(message_id), connection=queue.connection)
    except Exception:  # NoSuchJobError, or a job Redis lost half of
        return False
    return job.get_status(refresh=False) in WAITING


def recover(db: Database, queue: Queue) -> list[str]:
    """Enqueue every message that is due (past GRACE) and not leased, unless its job already waits in the
    queue. That covers jobs Redis lost, jobs a SIGKILLed worker left STARTED (their lease expired) and
    scheduled jobs overdue because the worker running the scheduler died. Returns the ids enqueued."""
    lost = [mid for mid in due_messages(db, grace=GRACE) if not _waiting(queue, mid)]
    enqueue_messages(queue, lost)
    return lost
