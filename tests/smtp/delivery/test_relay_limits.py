"""Per destination domain limits, shared by every worker through Redis: over them a delivery is deferred a
little (off the retry schedule), never failed."""

from __future__ import annotations

from datetime import timedelta

from harness.net import wait_for
from mailferry.models import utcnow
from mailferry.models.message import DEFERRED, DELIVERED, DONE
from mailferry.queue import enqueue_messages, get_queue, make_redis
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids, message
from tests.smtp.delivery.sink import SlowHandler


def test_the_connection_limit_holds_across_two_worker_processes(world, internet, db, workers, env):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2", handler=SlowHandler(delay=1.5))
    # batches of two, so both workers have messages to deliver at once (one batch would take all four)
    started = [workers(DIRECT_MAX_CONNECTIONS_PER_DOMAIN="1", DELIVERY_BATCH="2") for _ in range(2)]
    for worker in started:
        wait_for(lambda w=worker: "worker starting" in w.log(), timeout=30, what=f"a worker; log:\n{worker.log()}")
    ids = [world.seed([route]) for _ in range(4)]
    redis = make_redis(env["REDIS_URL"])
    enqueue_messages(get_queue(redis, env["RQ_QUEUE"]), ids)
    redis.close()

    logs = lambda: "\n".join(w.log()[-3000:] for w in started)  # noqa: E731
    wait_for(lambda: all(message(db, i).state == DONE for i in ids), timeout=90, what=f"delivery; logs:\n{logs()}")

    assert len(sink.messages) == 4 and sink.handler.peak == 1
    outcomes = [(a.outcome, a.reply) for i in ids for a in attempts(db, deliveries(db, i)[0].id)]
    limited = [reply for outcome, reply in outcomes if outcome == DEFERRED]
    assert limited and all("connection limit for dest.test reached" in reply for reply in limited)
    assert [o for o, _ in outcomes].count(DELIVERED) == 4
    assert sum("destination limit reached" in w.log() for w in started) >= 1


def test_over_the_per_minute_limit_a_delivery_is_deferred_a_little_not_failed(configure, world, internet, db):
    ctx = configure(DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE="1", RETRY_SCHEDULE="1h")
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    first, second = world.seed([route]), world.seed([route])

    assert run(ctx, first) is None
    ctx.transport.close()  # nothing parked to reuse: the second message needs a second new connection
    when = run(ctx, second)

    assert len(sink.messages) == 1
    [delivery] = deliveries(db, second)
    assert delivery.state == DEFERRED and delivery.last_reply.startswith("4.4.5 connection limit for dest.test")
    assert when is not None and when <= utcnow() + timedelta(seconds=61)  # not the 1h retry schedule
    assert dsn_ids(db) == []
