"""Relays: failover in order, the circuit breaker opening and closing, connection reuse, bad credentials."""

from __future__ import annotations

import socket
import time

from sqlalchemy import select

from harness.net import free_port, wait_for
from mailferry.models import Base
from mailferry.models.message import DEFERRED, DELIVERED, DONE
from mailferry.queue import enqueue_messages, get_queue, make_redis
from smtp.delivery.job import run
from smtp.routing.breaker import CLOSED, OPEN
from tests.smtp.delivery.helpers import attempts, deliveries, message
from tests.smtp.delivery.relays import PASSWORD, primary_env, relays_env


def test_a_dead_relay_fails_over_to_the_next(configure, world, relay_server, db):
    dead_port = free_port("127.0.0.7")  # nothing listens there
    second = relay_server("127.0.0.6", mode="ssl")
    ctx = configure(SMTP_DELIVERY_MODE="relay", SMTP_CONNECT_TIMEOUT="2",
                    **relays_env({"name": "dead", "host": "127.0.0.7", "port": dead_port}, second.config("second")))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    assert len(second.messages) == 1
    assert deliveries(db, message_id)[0].route == "relay:second"
    assert ctx.relays.breaker.state("dead").failures == 1


def test_the_circuit_opens_after_the_threshold_and_closes_after_the_cooldown(configure, world, relay_server, db):
    first, backup = relay_server("127.0.0.7"), relay_server("127.0.0.6")
    first.handler.password = b"changed-on-the-relay"  # every login fails until it is changed back
    ctx = configure(SMTP_DELIVERY_MODE="relay", RELAY_FAILURE_THRESHOLD="2", RELAY_COOLDOWN="1s",
                    **relays_env(first.config("first"), backup.config("backup")))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    breaker = ctx.relays.breaker

    for _ in range(2):
        assert run(ctx, world.seed([route])) is None
    assert first.connections == 2 and first.handler.failed_logins > 0 and breaker.state("first").state == OPEN
    skipped = world.seed([route])
    assert run(ctx, skipped) is None
    assert first.connections == 2  # open: not even tried
    assert len(backup.messages) == 3 and deliveries(db, skipped)[0].route == "relay:backup"

    first.handler.password = PASSWORD.encode()  # the relay is fixed
    wait_for(lambda: breaker.state("first").state != OPEN, timeout=5, what="the cool-down")
    after = world.seed([route])
    assert run(ctx, after) is None
    assert len(first.messages) == 1 and deliveries(db, after)[0].route == "relay:first"
    assert breaker.state("first").state == CLOSED


def test_consecutive_messages_reuse_one_relay_connection(configure, world, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="relay", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    ids = [world.seed([route]) for _ in range(3)]

    for message_id in ids:
        assert run(ctx, message_id) is None

    assert len(relay.messages) == 3 and relay.connections == 1
    assert len({m.session_id for m in relay.messages}) == 1
    assert len(relay.handler.logins) == 1  # authenticated once


def test_a_relay_that_dropped_the_pooled_connection_gets_a_new_one(configure, world, relay_server):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="relay", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    assert run(ctx, world.seed([route])) is None
    pooled = next(iter(ctx.relays._pool.values()))
    pooled.client.sock.shutdown(socket.SHUT_RDWR)  # as if the relay had hung up while we were idle

    assert run(ctx, world.seed([route])) is None
    assert len(relay.messages) == 2 and relay.connections == 2


def test_wrong_credentials_defer_with_a_clear_reason_and_never_leak_the_password(world, relay_server, db, workers,
                                                                                env, relay_ca):
    relay = relay_server("127.0.0.5")
    wrong = "Wr0ng-" + PASSWORD[::-1]
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])
    redis = make_redis(env["REDIS_URL"])
    enqueue_messages(get_queue(redis, env["RQ_QUEUE"]), [message_id])
    redis.close()

    worker = workers(SMTP_DELIVERY_MODE="relay", SMTP_RELAY_CA_FILE=relay_ca.ca_file, RETRY_SCHEDULE="1h",
                     **primary_env(relay, SMTP_PASSWORD=wrong))
    wait_for(lambda: deliveries(db, message_id)[0].state == DEFERRED, timeout=30,
             what=f"the deferral; worker log:\n{worker.log()}")

    [delivery] = deliveries(db, message_id)
    assert delivery.last_reply.startswith("4.7.0 relay primary: authentication failed (535")
    assert [a.reply for a in attempts(db, delivery.id)] == [delivery.last_reply]
    assert relay.connections == 1 and relay.handler.failed_logins > 0 and relay.messages == []
    assert message(db, message_id).state != DONE
    assert "authentication failed" in worker.log()  # logged before the deferral was committed
    assert wrong not in worker.log()
    assert wrong not in _all_database_text(db)


def _all_database_text(db) -> str:
    with db.session() as s:
        rows = [str(tuple(row)) for table in Base.metadata.sorted_tables for row in s.execute(select(table))]
    return "\n".join(rows)


def test_successful_relay_delivery_closes_a_half_open_circuit(configure, world, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="relay", RELAY_FAILURE_THRESHOLD="1", RELAY_COOLDOWN="1s",
                    **primary_env(relay))
    ctx.relays.breaker.record_failure("primary", now=time.time() - 5)  # opened, cool-down long over
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    assert deliveries(db, message_id)[0].state == DELIVERED
    assert ctx.relays.breaker.state("primary").state == CLOSED


def test_a_relay_certificate_nobody_vouches_for_is_refused(configure, world, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="relay", SMTP_RELAY_CA_FILE="", **primary_env(relay))  # test CA not trusted
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])

    assert run(ctx, message_id) is not None
    [delivery] = deliveries(db, message_id)
    assert delivery.state == DEFERRED and "TLS failed: certificate verify failed" in delivery.last_reply
    assert relay.messages == [] and relay.handler.logins == []  # no credentials sent over it
