"""`python worker.py`: an RQ worker with the scheduler, and the reconciler at start and every RECONCILE_INTERVAL."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Sequence

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from mailferry.logs import log, setup_logging
from mailferry.settings import Settings, settings_or_exit

from . import context
from .recovery import recover
from .schedule import schedule_followups

logger = logging.getLogger(__name__)


class DeliveryWorker(SimpleWorker):
    """Runs jobs in this process (no fork per message) and, once a job has finished, schedules the
    message's next attempt under the same job id: scheduled from inside the job it would be deleted
    with the finished job."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        super().execute_job(job, queue)
        schedule_followups(queue, context.current().followups)


def reconcile_once(ctx: context.Context) -> None:
    try:
        ids = recover(ctx.db, ctx.queue)
    except Exception:  # a database or Redis outage: log it and try again next round
        logger.exception("reconcile failed")
        return
    if ids:
        log(logger, logging.INFO, "reconciler re-enqueued messages", count=len(ids), message_ids=ids[:50])


# A periodic task gets (redis, queue, settings); it must itself make sure one run happens per interval
# across all workers (e.g. with a Redis lock), since every worker calls it.
Periodic = Callable[[Redis, Queue, Settings], object]


def run_periodic(ctx: context.Context, tasks: Sequence[Periodic]) -> None:
    for task in tasks:
        try:
            task(ctx.redis, ctx.queue, ctx.settings)
        except Exception:  # an outage: the next round tries again
            logger.exception("periodic task failed", extra={"task": getattr(task, "__name__", str(task))})


def _reconcile_forever(ctx: context.Context, interval: int, stop: threading.Event,
                       tasks: Sequence[Periodic]) -> None:
    while not stop.wait(interval):
        reconcile_once(ctx)
        run_periodic(ctx, tasks)


def run_worker(settings: Settings, burst: bool = False, periodic: Sequence[Periodic] = ()) -> None:
    setup_logging(settings.LOG_LEVEL)
    ctx = context.configure(settings)
    reconcile_once(ctx)
    run_periodic(ctx, periodic)
    stop = threading.Event()
    thread = threading.Thread(target=_reconcile_forever, args=(ctx, settings.RECONCILE_INTERVAL, stop, periodic),
                              name="reconciler", daemon=True)
    thread.start()
    log(logger, logging.INFO, "worker starting", queue=settings.RQ_QUEUE, worker_id=ctx.worker_id,
        mode=settings.SMTP_DELIVERY_MODE, relays=[r.name for r in ctx.relays.relays])
    if settings.SMTP_DELIVERY_MODE == "smart" and not ctx.relays.relays:
        log(logger, logging.WARNING, "smart mode without a relay delivers direct only: set SMTP_HOST or SMTP_RELAYS")
    try:
        # maintenance also re-takes the scheduler lock a crashed worker held: every minute, not every ten
        worker = DeliveryWorker([ctx.queue], connection=ctx.redis, maintenance_interval=60)
        worker.work(burst=burst, with_scheduler=True, logging_level=settings.LOG_LEVEL)
    finally:
        stop.set()
        context.reset()


def main(argv: list[str] | None = None, periodic: Sequence[Periodic] = ()) -> None:
    parser = argparse.ArgumentParser(description="Mailferry delivery worker")
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    args = parser.parse_args(argv)
    run_worker(settings_or_exit(), burst=args.burst, periodic=periodic)
