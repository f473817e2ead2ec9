"""Faults between the spool and the destination, with real `python -m smtp` and `python worker.py` processes:
a worker killed after the destination took the message, Redis restarted empty, DNS timing out. After each,
the copies are counted at the destinations' sinks."""

from __future__ import annotations

import time

from harness.net import wait_for
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED
from smtp.delivery.runner import HEARTBEAT_EVERY
from tests.smtp.delivery.faults import Mailbag, assert_each_accepted_delivered_once, copies, wait_all_final
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids


def test_worker_killed_after_the_destination_took_it_delivers_again_at_most_once_more(world, internet, db,
                                                                                       smtp_servers, workers):
    """b@two.test's sink has the message but its 250 never reached the worker, which then died: no MTA can
    tell that from a lost message, so it is sent again (one duplicate, RFC 5321 6.1). a@one.test, committed
    DELIVERED before the crash, is not sent again."""
    world.alias(world.domain("alias.test"), "team", "a@one.test", "b@two.test")
    internet.mx("one.test", (10, "mx.one.test", "127.0.0.2"))
    internet.mx("two.test", (10, "mx.two.test", "127.0.0.3"))
    one, two = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    two.handler.holding_reply.set()
    bag, server = Mailbag(), smtp_servers()
    crashed = workers(DELIVERY_LEASE="3s")
    sent = bag.send(server.address, rcpts=("team@alias.test",))
    assert sent.accepted

    wait_for(two.handler.stalled.is_set, timeout=30, what=f"the held 250; worker log:\n{crashed.log()}")
    crashed.kill()
    two.handler.holding_reply.clear()
    restarted = workers(DELIVERY_LEASE="3s")

    wait_all_final(db, what=restarted.log())
    assert [m.rcpt_tos for m in one.messages] == [("a@one.test",)]
    assert [m.rcpt_tos for m in two.messages] == [("b@two.test",), ("b@two.test",)]
    assert copies([one], sent.token) == 1 and copies([two], sent.token) == 2
    first, second = deliveries(db, sent.message_id)
    assert (first.state, second.state) == (DELIVERED, DELIVERED)
    assert [len(attempts(db, d.id)) for d in (first, second)] == [1, 1]  # the dead worker recorded none for b


def test_redis_restarted_empty_loses_nothing(world, internet, db, smtp_servers, workers, redis_server):
    """Redis goes away while a job runs (the job's end cannot be recorded in RQ) and comes back empty: a deferred message's
    scheduled retry is lost with it, and one message is accepted while it is down. The worker lives through
    it and the reconciler brings each message back; each is delivered once."""
    world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.data_replies.append("451 4.7.1 greylisted")
    bag, server = Mailbag(), smtp_servers()
    worker = workers(RETRY_SCHEDULE="4s", DELIVERY_BATCH="1")
    deferred = bag.send(server.address)
    wait_for(lambda: [d.state for d in deliveries(db, deferred.message_id)] == [DEFERRED], timeout=30,
             what=f"the first deferral; worker log:\n{worker.log()}")
    sink.handler.holding_reply.set()
    running = bag.send(server.address)
    wait_for(sink.handler.stalled.is_set, timeout=30, what=f"a job running; worker log:\n{worker.log()}")

    redis_server.stop()
    during = bag.send(server.address)
    time.sleep(HEARTBEAT_EVERY + 0.5)  # the worker's next heartbeat, after the job, needs Redis: RQ's loop quits
    sink.handler.holding_reply.clear()  # the destination's 250 arrives, and the job ends, with Redis away
    wait_for(lambda: "starting it again" in worker.log(), what=f"RQ's loop ending; {worker.log()[-3000:]}")
    redis_server.start()  # empty: no persistence
    after = bag.send(server.address)

    assert [sent.accepted for sent in (deferred, running, during, after)] == [True] * 4
    assert_each_accepted_delivered_once(db, bag, [sink], timeout=40, what=worker.log()[-5000:])
    assert worker.alive(), worker.log()[-5000:]
    assert worker.stop() == 0  # and SIGTERM still ends it


def test_dns_timing_out_at_delivery_defers_and_never_bounces(world, internet, db, smtp_servers, workers):
    """The destination's MX query, and for another destination its MX host's address query, time out."""
    domain = world.domain("alias.test")
    world.alias(domain, "slow", "bob@slow.test")
    world.alias(domain, "host", "carol@hostless.test")
    internet.mx("slow.test", (10, "mx.slow.test", "127.0.0.2"))
    internet.mx("hostless.test", (10, "mx.hostless.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    for name in ("slow.test", "mx.hostless.test"):
        internet.dns.drop(name)
    bag, server = Mailbag(), smtp_servers()
    worker = workers(DNS_TIMEOUT="1")
    slow, hostless = bag.send(server.address, ("slow@alias.test",)), bag.send(server.address, ("host@alias.test",))

    def deferred_twice(message_id: str) -> bool:
        [delivery] = deliveries(db, message_id)
        return [a.outcome for a in attempts(db, delivery.id)][:2] == [DEFERRED, DEFERRED]

    for sent in (slow, hostless):
        wait_for(lambda mid=sent.message_id: deferred_twice(mid), timeout=30, what=f"two deferrals; {worker.log()}")
        [delivery] = deliveries(db, sent.message_id)
        assert delivery.state != BOUNCED and delivery.last_reply.startswith("4"), delivery.last_reply
    assert dsn_ids(db) == [] and sink.messages == []
    for name in ("slow.test", "mx.hostless.test"):
        internet.dns.undrop(name)

    assert_each_accepted_delivered_once(db, bag, [sink], what=worker.log())
    assert dsn_ids(db) == []
