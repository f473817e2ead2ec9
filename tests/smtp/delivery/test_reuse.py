"""Connection reuse across jobs: the next message to the same MX goes over the parked connection, and a
connection the MX closed meanwhile is replaced without losing or doubling a message."""

from __future__ import annotations

import socket
import time

import pytest

from harness.net import wait_for
from harness.settings import make_settings
from mailferry.models.message import DELIVERED, DONE
from smtp.delivery import context
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import attempts, deliveries, message
from tests.smtp.delivery.sink import CommandLog


def _setup(world, internet):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    return route, internet.sink("127.0.0.2")


def test_consecutive_messages_to_one_mx_share_a_connection(ctx, world, internet, db, opened):
    route, sink = _setup(world, internet)
    ids = [world.seed([route]) for _ in range(3)]
    for message_id in ids:
        assert run(ctx, message_id) is None

    assert len(sink.messages) == 3 and opened == ["127.0.0.2"]
    assert all(message(db, i).state == DONE for i in ids)


def test_a_connection_the_mx_dropped_is_replaced_and_the_message_sent_once(ctx, world, internet, db, opened):
    route, sink = _setup(world, internet)
    assert run(ctx, world.seed([route])) is None
    for session, _ in list(ctx.transport._parked.values()):  # the MX hangs up while it is parked
        session.client.sock.shutdown(socket.SHUT_RDWR)

    second = world.seed([route])
    assert run(ctx, second) is None

    assert len(sink.messages) == 2 and len(opened) == 2
    assert [d.state for d in deliveries(db, second)] == [DELIVERED]


def test_a_connection_the_mx_closed_while_parked_costs_no_deferral(ctx, world, internet, db, opened):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2", handler=CommandLog(hang_up_after_message=True))
    assert run(ctx, world.seed([route])) is None
    wait_for(lambda: sink.handler.hang_ups == 1, what="the MX hanging up")

    second = world.seed([route])
    assert run(ctx, second) is None

    assert len(sink.messages) == 2 and len(opened) == 2
    [delivery] = deliveries(db, second)
    assert delivery.state == DELIVERED
    assert [(a.outcome, a.code) for a in attempts(db, delivery.id)] == [("delivered", 250)]
    assert "RSET" not in sink.handler.commands


def test_reuse_off_or_idle_too_long_opens_a_new_connection(ctx, world, internet, db, opened):
    route, sink = _setup(world, internet)
    ctx.transport.reuse_idle = 0
    run(ctx, world.seed([route]))
    run(ctx, world.seed([route]))
    assert not ctx.transport._parked

    ctx.transport.reuse_idle = 0.2
    run(ctx, world.seed([route]))
    time.sleep(0.5)  # the sweeper QUITs it
    assert not ctx.transport._parked
    run(ctx, world.seed([route]))

    assert len(sink.messages) == 4 and len(opened) == 4


@pytest.fixture
def one_new_connection_a_minute(env):
    yield context.configure(make_settings(**{**env, "DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE": "1"}))
    context.reset()


def test_only_new_connections_count_against_the_per_minute_limit(one_new_connection_a_minute, world, internet, db,
                                                                  opened):
    ctx = one_new_connection_a_minute
    route, sink = _setup(world, internet)
    ids = [world.seed([route]) for _ in range(5)]
    assert [run(ctx, i) for i in ids] == [None] * 5  # one connection, reused: the limit of 1/min holds
    assert len(sink.messages) == 5 and opened == ["127.0.0.2"]

    ctx.transport.close()  # nothing parked: the next message needs a second new connection this minute
    later = world.seed([route])
    assert run(ctx, later) is not None
    [delivery] = deliveries(db, later)
    assert delivery.state != DELIVERED and "connection limit for dest.test" in delivery.last_reply
    assert len(sink.messages) == 5 and opened == ["127.0.0.2"]
