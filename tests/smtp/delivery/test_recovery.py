"""Leases and the reconciler, in process: who may deliver a message, and what gets re-enqueued."""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job, JobStatus
from sqlalchemy import update

from mailferry.models import Message, utcnow
from mailferry.queue import DELIVER_JOB, job_id_for
from smtp.delivery import lease
from smtp.delivery.job import run
from smtp.delivery.recovery import recover
from tests.smtp.delivery.helpers import deliveries, message


def _set_lease(db, message_id, owner, until):
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(lease_owner=owner, lease_until=until))


def test_a_live_lease_keeps_other_workers_out(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])
    with db.session() as s:
        assert lease.claim(s, message_id, "other-worker", 60)

    assert run(ctx, message_id) is None  # the owner schedules what comes next
    assert sink.messages == [] and deliveries(db, message_id)[0].attempts == 0
    with db.session() as s:
        assert not lease.renew(s, message_id, ctx.worker_id, 60)


def test_an_expired_lease_is_taken_over(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])
    _set_lease(db, message_id, "dead-worker", utcnow() - timedelta(seconds=1))

    assert run(ctx, message_id) is None
    assert len(sink.messages) == 1
    assert message(db, message_id).lease_owner is None


def test_recover_requeues_a_dead_workers_started_job(ctx, world, db, redis_conn):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])
    _set_lease(db, message_id, "dead-worker", utcnow() - timedelta(seconds=1))
    with db.session() as s:  # claimed a lease-length ago
        s.execute(update(Message).where(Message.id == message_id).values(next_attempt_at=utcnow() - timedelta(minutes=5)))
    job = ctx.queue.enqueue(DELIVER_JOB, message_id, job_id=job_id_for(message_id))
    job.set_status(JobStatus.STARTED)  # what a SIGKILLed worker leaves behind
    ctx.queue.remove(job)

    assert recover(ctx.db, ctx.queue) == [message_id]
    assert Job.fetch(job_id_for(message_id), connection=redis_conn).get_status() == JobStatus.QUEUED
    assert ctx.queue.job_ids == [job_id_for(message_id)]
    assert recover(ctx.db, ctx.queue) == []  # queued now: not enqueued twice


def test_recover_requeues_an_overdue_scheduled_job_but_not_a_queued_one(ctx, world, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    overdue, queued = world.seed([route]), world.seed([route])
    with db.session() as s:
        s.execute(update(Message).where(Message.id.in_([overdue, queued]))
                  .values(next_attempt_at=utcnow() - timedelta(minutes=1)))
    # the worker that ran the scheduler died: this scheduled job would wait for another scheduler
    ctx.queue.enqueue_at(utcnow() - timedelta(minutes=1), DELIVER_JOB, overdue, job_id=job_id_for(overdue))
    ctx.queue.enqueue(DELIVER_JOB, queued, job_id=job_id_for(queued))

    assert recover(ctx.db, ctx.queue) == [overdue]
    assert set(ctx.queue.job_ids) == {job_id_for(overdue), job_id_for(queued)}


def test_recover_leaves_live_leases_and_future_retries_alone(ctx, world, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    leased, later = world.seed([route]), world.seed([route])
    _set_lease(db, leased, "busy-worker", utcnow() + timedelta(minutes=5))
    with db.session() as s:
        s.execute(update(Message).where(Message.id.in_([leased, later]))
                  .values(next_attempt_at=utcnow() - timedelta(minutes=1)))
        s.execute(update(Message).where(Message.id == later).values(next_attempt_at=utcnow() + timedelta(minutes=5)))

    assert recover(ctx.db, ctx.queue) == []
