"""The real worker: `python worker.py` subprocesses on a real Redis, recovering from lost jobs and crashes."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.net import wait_for
from mailferry.models.message import DEFERRED, DELIVERED, DONE
from mailferry.queue import enqueue_messages, get_queue, make_redis
from tests.smtp.delivery.conftest import ROOT
from tests.smtp.delivery.helpers import attempts, deliveries, message


def _enqueue(env, *message_ids):
    redis = make_redis(env["REDIS_URL"])
    enqueue_messages(get_queue(redis, env["RQ_QUEUE"]), message_ids)
    redis.close()


def _done(db, message_id):
    return lambda: message(db, message_id).state == DONE


def test_worker_retries_a_deferral_through_the_rq_scheduler(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.data_replies.append("451 4.7.1 greylisted")
    message_id = world.seed([route])
    _enqueue(env, message_id)

    worker = workers(RECONCILE_INTERVAL="1h")  # only the scheduled job can bring it back
    wait_for(_done(db, message_id), timeout=30, what=f"delivery; worker log:\n{worker.log()}")

    assert len(sink.messages) == 1
    [delivery] = deliveries(db, message_id)
    assert [a.outcome for a in attempts(db, delivery.id)] == [DEFERRED, DELIVERED]


def test_reconciler_recovers_messages_whose_jobs_redis_lost(world, internet, db, workers, env, redis_conn):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    first = world.seed([route])
    _enqueue(env, first)
    redis_conn.flushall()  # accepted and committed, then Redis lost the job

    worker = workers()
    wait_for(_done(db, first), timeout=30, what=f"first message; worker log:\n{worker.log()}")
    second = world.seed([route])  # never enqueued: the periodic reconciler has to find it
    wait_for(_done(db, second), timeout=30, what=f"second message; worker log:\n{worker.log()}")

    assert len(sink.messages) == 2


def test_worker_killed_mid_delivery_delivers_exactly_once_per_destination(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "team", "a@one.test", "b@two.test")
    internet.mx("one.test", (10, "mx.one.test", "127.0.0.2"))
    internet.mx("two.test", (10, "mx.two.test", "127.0.0.3"))
    one, two = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    two.handler.stalling.set()
    message_id = world.seed([route])
    _enqueue(env, message_id)

    crashed = workers(DELIVERY_LEASE="3s")
    wait_for(two.handler.stalled.is_set, timeout=30, what=f"the stall; worker log:\n{crashed.log()}")
    assert len(one.messages) == 1
    assert [d.state for d in deliveries(db, message_id)][0] == DELIVERED  # committed before the next domain
    crashed.kill()
    two.handler.stalling.clear()

    restarted = workers(DELIVERY_LEASE="3s")
    wait_for(_done(db, message_id), timeout=30, what=f"redelivery; worker log:\n{restarted.log()}")

    assert len(one.messages) == 1 and len(two.messages) == 1
    assert [d.state for d in deliveries(db, message_id)] == [DELIVERED, DELIVERED]
    assert [len(attempts(db, d.id)) for d in deliveries(db, message_id)] == [1, 1]


def test_worker_enqueues_and_runs_the_daily_reverification(world, db, workers):
    from mailferry.models import Domain

    domain_id = world.domain("alias.test")  # no records published on the loopback DNS
    worker = workers()
    wait_for(lambda: _checked(db, domain_id), timeout=30, what=f"re-verification; worker log:\n{worker.log()}")
    with db.session() as s:
        domain = s.get(Domain, domain_id)
        assert domain.check_results["ownership"]["ok"] is False
        assert domain.broken_since is not None


def _checked(db, domain_id):
    from mailferry.models import Domain

    with db.session() as s:
        return s.get(Domain, domain_id).last_check_at is not None


def test_a_retry_scheduled_by_a_dead_worker_is_picked_up_by_another(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.data_replies.append("451 4.7.1 greylisted")
    message_id = world.seed([route])
    _enqueue(env, message_id)

    first = workers(RETRY_SCHEDULE="3s")  # holds the RQ scheduler lock, which outlives it by a minute
    wait_for(lambda: deliveries(db, message_id)[0].state == DEFERRED, timeout=30,
             what=f"the deferral; worker log:\n{first.log()}")
    first.kill()
    second = workers(RETRY_SCHEDULE="3s")
    wait_for(_done(db, message_id), timeout=30, what=f"the retry; worker log:\n{second.log()}")

    assert len(sink.messages) == 1
    assert "reconciler re-enqueued messages" in second.log()


def test_burst_mode_delivers_what_is_queued_and_exits(world, internet, db, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])
    _enqueue(env, message_id)

    done = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, timeout=60)

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert len(sink.messages) == 1 and message(db, message_id).state == DONE


def test_a_finished_deliver_job_leaves_no_job_registry_entry_or_execution_behind(world, internet, db, env):
    """The worker settles deliver jobs on a short path of its own (no WATCH on dependents): what RQ's full
    path leaves for a result_ttl=0 job is what it leaves (nothing)."""
    from rq.job import Job

    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2")
    ids = [world.seed([route]) for _ in range(3)]
    _enqueue(env, *ids)

    done = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, timeout=60)

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    redis = make_redis(env["REDIS_URL"])
    try:
        queue = get_queue(redis, env["RQ_QUEUE"])
        assert all(message(db, mid).state == DONE for mid in ids)
        assert not any(Job.exists(f"deliver-{mid}", connection=redis) for mid in ids)
        assert queue.started_job_registry.count == 0 and queue.failed_job_registry.count == 0
        assert not [j for j in queue.finished_job_registry.get_job_ids() if j.startswith("deliver-")]
        assert queue.count == 0
        assert not redis.keys("rq:execution*")
        assert not [k for mid in ids for k in redis.keys(f"*{mid}*")]  # no key of any kind left for the jobs
        assert not [m for k in redis.keys("rq:*") if redis.type(k) == b"zset"
                    for m in redis.zrange(k, 0, -1) if b"deliver-" in m]
    finally:
        redis.close()


def test_worker_lowers_its_cpu_priority_by_worker_nice_and_still_delivers(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])
    _enqueue(env, message_id)
    ours = os.getpriority(os.PRIO_PROCESS, 0)

    worker = workers(WORKER_NICE="7")
    wait_for(_done(db, message_id), timeout=30, what=f"delivery; worker log:\n{worker.log()}")

    assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == min(19, ours + 7)
    assert f'"niceness": {min(19, ours + 7)}' in worker.log()
    assert len(sink.messages) == 1
