"""Direct delivery routing: MX preference and fallback, implicit MX, null MX, the shared MX cache."""

from __future__ import annotations

import random

from mailferry.models.message import BOUNCED, DELIVERED
from smtp.delivery.job import run
from smtp.delivery.mx import MxHost, order_hosts
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids
from tests.smtp.delivery.sink import Refuser


def test_lowest_preference_first(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (20, "backup.dest.test", "127.0.0.3"), (10, "primary.dest.test", "127.0.0.2"))
    primary, backup = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")

    run(ctx, world.seed([route]))

    assert len(primary.messages) == 1 and backup.messages == []


def test_falls_back_to_the_second_mx_when_the_first_refuses(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    # nothing listens on 127.0.0.2: the connection is refused
    internet.mx("dest.test", (10, "primary.dest.test", "127.0.0.2"), (20, "backup.dest.test", "127.0.0.3"))
    backup = internet.sink("127.0.0.3")

    message_id = world.seed([route])
    run(ctx, message_id)

    assert len(backup.messages) == 1
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.route) == (DELIVERED, "mx:backup.dest.test")


def test_falls_back_when_the_first_mx_greets_with_421(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "primary.dest.test", "127.0.0.2"), (20, "backup.dest.test", "127.0.0.3"))
    busy = Refuser("127.0.0.2", internet.port).start()
    backup = internet.sink("127.0.0.3")
    try:
        message_id = world.seed([route])
        run(ctx, message_id)
    finally:
        busy.stop()
    assert busy.connections == 1 and len(backup.messages) == 1
    assert deliveries(db, message_id)[0].route == "mx:backup.dest.test"


def test_a_4xx_for_the_recipient_is_its_answer_for_this_attempt(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "primary.dest.test", "127.0.0.2"), (20, "backup.dest.test", "127.0.0.3"))
    busy = internet.sink("127.0.0.2")
    busy.handler.rcpt_replies["bob@dest.test"] = "450 4.2.1 mailbox busy"
    backup = internet.sink("127.0.0.3")

    message_id = world.seed([route])
    assert run(ctx, message_id) is not None

    assert busy.messages == [] and backup.messages == []
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code, delivery.route) == ("deferred", 450, "mx:primary.dest.test")


def test_random_order_among_equal_preferences():
    hosts = (MxHost(10, "a", ("127.0.0.2",)), MxHost(10, "b", ("127.0.0.3",)), MxHost(5, "c", ("127.0.0.4",)))
    orders = {tuple(h.name for h in order_hosts(hosts, random.Random(seed))) for seed in range(40)}
    assert orders == {("c", "a", "b"), ("c", "b", "a")}


def test_implicit_mx_is_the_domains_address(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@bare.test")
    internet.dns.add("bare.test", "A", "127.0.0.5")
    sink = internet.sink("127.0.0.5")

    message_id = world.seed([route])
    run(ctx, message_id)

    assert len(sink.messages) == 1
    assert deliveries(db, message_id)[0].route == "mx:bare.test"


def test_null_mx_bounces_permanently(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@nomail.test")
    internet.dns.add("nomail.test", "MX", "0 .")
    internet.dns.add("nomail.test", "A", "127.0.0.6")  # must not be used as an implicit MX
    sink = internet.sink("127.0.0.6")

    message_id = world.seed([route])
    assert run(ctx, message_id) is None

    assert sink.messages == []
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code) == (BOUNCED, 556)
    assert "5.1.10" in delivery.last_reply
    assert len(dsn_ids(db)) == 1


def test_unknown_domain_bounces(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@nowhere.test")
    message_id = world.seed([route])
    run(ctx, message_id)
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code) == (BOUNCED, 550)


def test_dns_timeout_defers(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@slow.test")
    internet.dns.drop("slow.test")
    message_id = world.seed([route])
    assert run(ctx, message_id) is not None
    [delivery] = deliveries(db, message_id)
    assert delivery.state == "deferred" and "4.4.3" in delivery.last_reply
    assert "no DNS server answered in time" in delivery.last_reply and "Timeout" not in delivery.last_reply  # words
    assert attempts(db, delivery.id)[0].outcome == "deferred"


def test_second_message_is_served_from_the_mx_cache(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, world.seed([route]))
    run(ctx, world.seed([route]))

    assert len(sink.messages) == 2
    assert internet.dns.queries[("dest.test.", "MX")] == 1
    assert internet.dns.queries[("mx.dest.test.", "A")] == 1
    assert ctx.mx.counters() == {"dns_lookups": 1, "cache_hits": 1}


def test_cache_ttl_is_clamped(ctx, internet, redis_conn):
    internet.mx("short.test", (10, "mx.short.test", "127.0.0.2"), ttl=1)
    ctx.mx.min_ttl, ctx.mx.max_ttl = 30, 60
    ctx.mx.lookup("short.test")
    assert 25 <= redis_conn.ttl("mailferry:mx:short.test") <= 30
    internet.mx("long.test", (10, "mx.long.test", "127.0.0.2"), ttl=86400)
    ctx.mx.lookup("long.test")
    assert 55 <= redis_conn.ttl("mailferry:mx:long.test") <= 60
