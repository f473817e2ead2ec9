"""`python worker.py`: an RQ worker with the scheduler, and the reconciler at start and every RECONCILE_INTERVAL."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.utils import now
from rq.worker import WorkerStatus

from mailferry import heartbeats
from mailferry.logs import log, setup_logging
from mailferry.metrics import worker_metrics
from mailferry.metrics_server import MetricsServer
from mailferry.queue import DELIVER_JOB, make_redis
from mailferry.settings import Settings, settings_or_exit

from . import context
from .recovery import recover
from .schedule import schedule_followups

logger = logging.getLogger(__name__)


RESTART_AFTER = 1.0  # seconds before RQ's work loop is started again after it ended on an error
HEARTBEAT_EVERY = 5.0  # seconds between the worker's own heartbeats when nothing else changed
SUSPENSION_CHECK_EVERY = 1.0


class DeliveryWorker(SimpleWorker):
    """Runs jobs in this process (no fork per message) and, once a job has finished, schedules the
    message's next attempt under the same job id: scheduled from inside the job it would be deleted
    with the finished job.

    RQ's own bookkeeping is most of a short job's cost (about 60 Redis commands, a dozen round trips); the
    ones that only repeat what Redis already holds are skipped: the worker heartbeat sent twice per job
    (three round trips each) is sent at most every HEARTBEAT_EVERY seconds unless it must lengthen the
    worker's TTL, a state that is already set is not set again, `rq suspend` is read once a second, a
    finished job gets no last heartbeat (deliver jobs have no callbacks and are deleted right after,
    result_ttl=0), and a finished deliver job is settled in one MULTI/EXEC, with the worker's IDLE state,
    without RQ's WATCH on dependents it never has and Job.delete()'s reads (`_lean`)."""

    _beat_at = 0.0
    _beat_ttl = 0
    _suspension_checked_at = float("-inf")
    stop_asked = False  # SIGTERM/SIGINT: RQ's loop ends for good, not for an error

    def request_stop(self, signum, frame) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)

    def execute_job(self, job: Job, queue: Queue) -> None:
        super().execute_job(job, queue)
        schedule_followups(queue, context.current().followups)

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
        elif ttl > self._beat_ttl or time.monotonic() - self._beat_at >= HEARTBEAT_EVERY:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipeline=pipe)
                pipe.execute()
        else:
            self.last_heartbeat = now()
            return
        self._beat_at, self._beat_ttl = time.monotonic(), ttl

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return
        super().set_state(state, pipeline=pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        """`rq suspend` is read at most every SUSPENSION_CHECK_EVERY seconds, not before every job."""
        if time.monotonic() - self._suspension_checked_at >= SUSPENSION_CHECK_EVERY:
            super().check_for_suspension(burst)
            self._suspension_checked_at = time.monotonic()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry,
                           execution: Execution) -> None:
        if not self._lean(job):
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            job._status = JobStatus.FINISHED
            # What Job.delete() removes, without its five reads: this execution (hash, started registry,
            # the job's and the worker's execution sets) is the job's only one, and nothing else exists.
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)  # so execute_job's own set_state is skipped
            pipeline.delete(job.key, job.dependents_key, job.dependencies_key, Result.get_key(job.id),
                            job.execution_registry.key)
            pipeline.execute()

    def _lean(self, job: Job) -> bool:
        """A deliver job as mailferry.queue enqueues it: no result kept, no dependents, repeats, groups or
        rate limit (anything else goes through RQ's full path)."""
        return (job.func_name == DELIVER_JOB and job.get_result_ttl(self.default_result_ttl) == 0
                and job.repeats_left is None and not job.group_id and not job.has_rate_limit)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        job.ended_at = now()
        if job.success_callback or job.failure_callback:  # a callback still runs: keep the job alive
            job.heartbeat(now(), heartbeat_ttl)


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
        ctx.mx.flush_hits()  # MX cache hits counted since the last flush, if the worker went quiet


def _beat_forever(ctx: context.Context, stop: threading.Event) -> None:
    while True:
        try:
            heartbeats.beat(ctx.redis, ctx.worker_id)
            worker_metrics().heartbeat.set_to_current_time()
        except RedisError as exc:  # Redis is away: /readyz will say so anyway
            log(logger, logging.WARNING, "heartbeat failed", error=type(exc).__name__)
        if stop.wait(heartbeats.BEAT_EVERY):
            return


def run_worker(settings: Settings, burst: bool = False, periodic: Sequence[Periodic] = ()) -> None:
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    niceness = os.nice(settings.WORKER_NICE)  # before anything runs: threads and children inherit it
    ctx = context.configure(settings)
    stop = threading.Event()
    metrics = _serve_metrics(settings, stop)
    threading.Thread(target=_beat_forever, args=(ctx, stop), name="heartbeat", daemon=True).start()
    reconcile_once(ctx)
    run_periodic(ctx, periodic)
    thread = threading.Thread(target=_reconcile_forever, args=(ctx, settings.RECONCILE_INTERVAL, stop, periodic),
                              name="reconciler", daemon=True)
    thread.start()
    log(logger, logging.INFO, "worker starting", queue=settings.RQ_QUEUE, worker_id=ctx.worker_id,
        niceness=niceness, mode=settings.SMTP_DELIVERY_MODE, relays=[r.name for r in ctx.relays.relays])
    if settings.SMTP_DELIVERY_MODE == "smart" and not ctx.relays.relays:
        log(logger, logging.WARNING, "smart mode without a relay delivers direct only: set SMTP_HOST or SMTP_RELAYS")
    try:
        _work(ctx, burst)
    finally:
        stop.set()
        _forget(ctx)
        context.reset()
        if metrics is not None:
            metrics.stop()


def _serve_metrics(settings: Settings, stop: threading.Event) -> MetricsServer | None:
    """WORKER_METRICS_LISTEN: this worker's counters; /readyz is 200 until it is asked to stop."""
    if not settings.WORKER_METRICS_LISTEN:
        return None
    worker_metrics()  # every metric is on /metrics from the first scrape, before the first delivery
    server = MetricsServer(*settings.WORKER_METRICS_LISTEN, ready=lambda: not stop.is_set())
    server.start()
    return server


def _forget(ctx: context.Context) -> None:
    try:
        heartbeats.forget(ctx.redis, ctx.worker_id)
    except RedisError:
        pass  # its beat ages out


def _work(ctx: context.Context, burst: bool) -> None:
    """RQ's work loop, started again when it ended on an error instead of a stop: RQ quits on any error
    outside its dequeue, such as Redis going away while it records the end of a job."""
    while True:
        # maintenance also re-takes the scheduler lock a crashed worker held: every minute, not every ten
        worker = DeliveryWorker([ctx.queue], connection=ctx.redis, maintenance_interval=60)
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=ctx.settings.LOG_LEVEL)
        except RedisError as exc:  # its teardown could not reach Redis either
            log(logger, logging.WARNING, "worker loop failed", error=type(exc).__name__)
        if burst or worker.stop_asked:
            return
        log(logger, logging.WARNING, "worker loop ended without a stop request, starting it again")
        try:
            time.sleep(RESTART_AFTER)
        except Exception:  # a stop asked for meanwhile: RQ's signal handler raises StopRequested
            if not worker.stop_asked:
                raise
        if worker.stop_asked:
            return


def check(settings: Settings, host: str | None = None) -> tuple[bool, str]:
    """For a container healthcheck: has a worker of this host beaten within WORKER_HEARTBEAT_MAX_AGE?"""
    host = host or socket.gethostname()
    max_age = settings.WORKER_HEARTBEAT_MAX_AGE
    try:
        redis = make_redis(settings.REDIS_URL)
        beats = [b for b in heartbeats.fresh_beats(redis, max_age) if b.host == host]
        redis.close()
    except RedisError as exc:
        return False, f"Redis at {settings.REDIS_URL} did not answer: {exc}"
    if not beats:
        return False, f"no delivery worker on {host} has sent a heartbeat in the last {max_age} s"
    return True, f"ok: worker {beats[0].worker_id} sent a heartbeat {beats[0].age:.0f} s ago"


def main(argv: list[str] | None = None, periodic: Sequence[Periodic] = ()) -> None:
    parser = argparse.ArgumentParser(description="Mailferry delivery worker")
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    parser.add_argument("--check", action="store_true",
                        help="exit 0 when a worker of this host sent a heartbeat lately, else 1 (healthchecks)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.check:
        ok, line = check(settings)
        print(line, file=sys.stdout if ok else sys.stderr)
        raise SystemExit(0 if ok else 1)
    run_worker(settings, burst=args.burst, periodic=periodic)
