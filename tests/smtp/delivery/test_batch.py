"""Batched delivery: one deliver job takes the deliver jobs waiting behind it and delivers all of them over one
connection, committing each message before the next transaction; a worker killed mid-batch loses nothing
and sends nothing twice."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from rq.job import Job
from sqlalchemy import func, select, update

from harness.net import wait_for
from harness.settings import make_settings
from mailferry.models import Alias, DailyStat, Delivery, Message, utcnow
from mailferry.models.message import DELIVERED, DONE
from mailferry.queue import enqueue_messages, get_queue, job_id_for, make_redis
from smtp.delivery import context, job
from smtp.delivery.batch import take_waiting
from smtp.delivery.lease import claim
from smtp.delivery.recovery import recover
from tests.smtp.delivery.helpers import attempts, deliveries, message
from tests.smtp.delivery.sink import SinkHandler


class CommitWatcher(SinkHandler):
    """Records, at each DATA, how many destinations the database already holds as delivered."""

    def __init__(self, db):
        super().__init__()
        self.db = db
        self.delivered_before: list[int] = []

    async def handle_DATA(self, server, session, envelope):
        with self.db.session() as s:
            self.delivered_before.append(
                s.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == DELIVERED)))
        return await super().handle_DATA(server, session, envelope)


class StallAfter(SinkHandler):
    """Accepts `accepted` messages, then stalls every DATA until released."""

    def __init__(self, accepted: int):
        super().__init__()
        self.accepted = accepted
        self.released = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if len(self.messages) >= self.accepted and not self.released.is_set():
            self.stalling.set()
        return await super().handle_DATA(server, session, envelope)



def test_one_job_delivers_the_waiting_messages_over_one_connection(ctx, world, internet, db, opened):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2", handler=CommitWatcher(db))
    ids = [world.seed([route]) for _ in range(4)]
    enqueue_messages(ctx.queue, ids[1:])  # the first one's job is the one running

    job.deliver_message(ids[0])

    assert all(message(db, i).state == DONE for i in ids)
    assert len(sink.messages) == 4 and opened == ["127.0.0.2"]
    assert len({m.session_id for m in sink.messages}) == 1
    assert sink.handler.delivered_before == [0, 1, 2, 3]  # each committed before the next DATA
    assert ctx.queue.count == 0
    assert not any(ctx.redis.exists(Job.key_for(job_id_for(i))) for i in ids[1:])
    assert ctx.followups == {}


def test_a_batch_skips_a_message_another_worker_holds(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    ids = [world.seed([route]) for _ in range(3)]
    with db.session() as s:
        assert claim(s, ids[1], "someone-else", 60)
    enqueue_messages(ctx.queue, ids[1:])

    job.deliver_message(ids[0])

    assert [message(db, i).state == DONE for i in ids] == [True, False, True]
    assert len(sink.messages) == 2
    assert [d.state for d in deliveries(db, ids[1])] != [DELIVERED]


def test_a_batch_schedules_each_deferred_message(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.data_replies += ["451 4.7.1 greylisted", "250 2.0.0 OK"]
    ids = [world.seed([route]) for _ in range(2)]
    enqueue_messages(ctx.queue, ids[1:])

    job.deliver_message(ids[0])

    deferred = [i for i in ids if message(db, i).state != DONE]
    assert len(deferred) == 1 and set(ctx.followups) == set(deferred)


def test_jobs_taken_but_never_claimed_are_found_by_the_reconciler(ctx, world, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    ids = [world.seed([route]) for _ in range(3)]
    enqueue_messages(ctx.queue, ids)

    assert take_waiting(ctx.queue, 2) == ids[:2]  # then the worker dies before its claim
    with db.session() as s:  # past the reconciler's grace
        s.execute(update(Message).values(next_attempt_at=utcnow() - timedelta(minutes=1)))

    assert sorted(recover(db, ctx.queue)) == sorted(ids[:2])  # the third one's job still waits


def test_take_waiting_stops_at_a_job_that_is_not_a_delivery(ctx, world):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    first, second = world.seed([route]), world.seed([route])
    enqueue_messages(ctx.queue, [first])
    ctx.queue.enqueue("builtins.print", "not a delivery")
    enqueue_messages(ctx.queue, [second])

    assert take_waiting(ctx.queue, 5) == [first]
    assert ctx.queue.count == 2


def test_worker_killed_mid_batch_delivers_each_message_exactly_once(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    handler = StallAfter(accepted=1)
    sink = internet.sink("127.0.0.2", handler=handler)
    ids = [world.seed([route]) for _ in range(3)]
    redis = make_redis(env["REDIS_URL"])
    enqueue_messages(get_queue(redis, env["RQ_QUEUE"]), ids)  # all waiting before the worker starts

    crashed = workers(DELIVERY_LEASE="3s")
    wait_for(handler.stalled.is_set, timeout=30, what=f"the stall; worker log:\n{crashed.log()}")
    assert len(sink.messages) == 1
    delivered = [i for i in ids if deliveries(db, i)[0].state == DELIVERED]
    assert len(delivered) == 1  # committed before the next transaction
    crashed.kill()
    handler.released.set()
    handler.stalling.clear()

    restarted = workers(DELIVERY_LEASE="3s")
    wait_for(lambda: all(message(db, i).state == DONE for i in ids), timeout=40,
             what=f"redelivery; worker log:\n{restarted.log()}")
    redis.close()

    assert len(sink.messages) == 3
    assert sorted(next(i for i in ids if i.encode() in m.data) for m in sink.messages) == sorted(ids)
    for i in ids:
        [delivery] = deliveries(db, i)
        assert [a.outcome for a in attempts(db, delivery.id)] == [DELIVERED]


class Takeover(SinkHandler):
    """At the first DATA, another worker takes `victim` over (its lease ran out), and the DATA is slow."""

    def __init__(self, db, victim: str, seconds: float):
        super().__init__()
        self.db, self.victim, self.seconds = db, victim, seconds

    async def handle_DATA(self, server, session, envelope):
        if not self.messages:
            with self.db.session() as s:
                s.execute(update(Message).where(Message.id == self.victim).values(lease_owner="another-worker"))
            await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


def test_a_batch_leaves_a_message_whose_lease_was_lost_meanwhile(env, world, internet, db):
    ctx = context.configure(make_settings(**{**env, "DELIVERY_LEASE": "3s"}))
    try:
        route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
        internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
        ids = [world.seed([route]) for _ in range(3)]
        sink = internet.sink("127.0.0.2", handler=Takeover(db, ids[1], seconds=1.2))  # past a third of the lease
        enqueue_messages(ctx.queue, ids[1:])

        job.deliver_message(ids[0])
    finally:
        context.reset()

    assert len(sink.messages) == 2
    assert [message(db, i).state == DONE for i in ids] == [True, False, True]
    assert message(db, ids[1]).lease_owner == "another-worker"


class SlotWatcher(SinkHandler):
    """Records, at each DATA, how many of the destination's limiter slots are taken."""

    def __init__(self, limiter, domain: str):
        super().__init__()
        self.limiter, self.domain = limiter, domain
        self.in_use: list[int] = []

    async def handle_DATA(self, server, session, envelope):
        self.in_use.append(self.limiter.in_use(self.domain))
        return await super().handle_DATA(server, session, envelope)


def test_a_batch_holds_one_limiter_slot_per_domain_and_releases_it(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2", handler=SlotWatcher(ctx.limiter, "dest.test"))
    ids = [world.seed([route]) for _ in range(3)]
    enqueue_messages(ctx.queue, ids[1:])
    ctx.redis.config_resetstat()

    job.deliver_message(ids[0])

    scripts = ctx.redis.info("commandstats").get("cmdstat_eval", {}).get("calls")
    # taking the waiting jobs (twice: a batch under a quarter full waits once for more), one limiter acquire
    assert scripts == 3
    assert len(sink.messages) == 3 and sink.handler.in_use == [1, 1, 1]
    assert ctx.limiter.in_use("dest.test") == 0


def test_a_batch_writes_its_counters_once_at_its_end(ctx, world, internet, db):
    domain = world.domain("alias.test")
    route = world.alias(domain, "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    ids = [world.seed([route]) for _ in range(3)]
    enqueue_messages(ctx.queue, ids[1:])

    job.deliver_message(ids[0])

    with db.session() as s:
        stats = {row.domain_id: row for row in s.scalars(select(DailyStat))}
        alias = s.scalars(select(Alias).where(Alias.local_part == "hello")).one()
    assert len(sink.messages) == 3
    assert stats[domain].forwarded == 3 and stats[0].forwarded == 3 and stats[domain].dkim_signed == 3
    assert alias.forwarded_count == 3 and alias.last_used_at is not None


def test_a_batch_under_a_quarter_full_waits_once_for_messages_enqueued_meanwhile(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    first, late = world.seed([route]), world.seed([route])
    ctx.settings = ctx.settings.replace(DELIVERY_BATCH_WAIT_MS=500)
    threading.Timer(0.1, enqueue_messages, args=(ctx.queue, [late])).start()  # arrives during the wait

    job.deliver_message(first)

    assert len(sink.messages) == 2 and ctx.queue.count == 0
    assert message(db, late).state == DONE


def test_without_a_batch_wait_a_lone_job_goes_at_once(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    first, late = world.seed([route]), world.seed([route])
    ctx.settings = ctx.settings.replace(DELIVERY_BATCH_WAIT_MS=0)
    timer = threading.Timer(0.1, enqueue_messages, args=(ctx.queue, [late]))
    timer.start()

    job.deliver_message(first)
    timer.join()

    assert len(sink.messages) == 1 and ctx.queue.count == 1
