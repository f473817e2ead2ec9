"""Smart mode end to end: a destination whose MX keeps deferring moves to the relay, and back once it recovers.

The exploration draw is the only randomness; the tests pin it with a random.Random whose draws always or
never explore, so what is asserted does not depend on luck.
"""

from __future__ import annotations

import random

from sqlalchemy import select

from mailferry.models import RouteStat
from mailferry.models.message import DELIVERED
from smtp.delivery.job import run
from smtp.routing.smart import DIRECT, RELAY
from tests.smtp.delivery.helpers import attempts, deliveries
from tests.smtp.delivery.relays import primary_env


class Draws(random.Random):
    """random() always returns `value`: 0.0 always explores, 0.99 never does."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


NEVER_EXPLORE, ALWAYS_EXPLORE = Draws(0.99), Draws(0.0)


def _routes(db, message_id) -> list[str]:
    [delivery] = deliveries(db, message_id)
    assert delivery.state == DELIVERED
    return [a.route for a in attempts(db, delivery.id)]


def _scores(db) -> dict[str, tuple[int, int]]:
    with db.session() as s:
        return {r.route: (r.successes, r.failures) for r in s.scalars(
            select(RouteStat).where(RouteStat.destination_domain == "dest.test"))}


def test_smart_moves_a_failing_domain_to_the_relay_and_back_after_recovery(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="smart", **primary_env(relay))
    ctx.rng = NEVER_EXPLORE
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")
    mx.handler.data_replies.extend(["451 4.3.0 mailbox busy"] * 3)

    # No history: hybrid. Direct defers, the relay takes it in the same pass; both outcomes are learnt.
    for _ in range(3):
        message_id = world.seed([route])
        assert run(ctx, message_id) is None
        assert _routes(db, message_id) == ["mx:mx.dest.test", "relay:primary"]
    assert _scores(db) == {DIRECT: (0, 3), RELAY: (3, 0)}
    assert len(mx.messages) == 0 and len(relay.messages) == 3

    # Now it routes by score: straight to the relay, the MX is not even tried.
    switched = world.seed([route])
    assert run(ctx, switched) is None
    assert _routes(db, switched) == ["relay:primary"]
    assert mx.handler.data_replies == [] and len(relay.messages) == 4

    # The MX recovers (its queue of deferrals is used up). Exploring sends some mail direct again ...
    ctx.rng = ALWAYS_EXPLORE
    explored = []
    for _ in range(10):
        message_id = world.seed([route])
        assert run(ctx, message_id) is None
        explored += _routes(db, message_id)
    assert "mx:mx.dest.test" in explored
    successes, failures = _scores(db)[DIRECT]
    assert (successes, failures) == (explored.count("mx:mx.dest.test"), 3)

    # ... and once direct has a good record again it is the route of choice.
    ctx.rng = NEVER_EXPLORE
    back = world.seed([route])
    assert run(ctx, back) is None
    assert _routes(db, back) == ["mx:mx.dest.test"]


def test_smart_without_history_still_bounces_a_recipient_5xx_without_the_relay(configure, world, internet,
                                                                               relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="smart", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2").handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 no such user"
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    assert relay.messages == [] and deliveries(db, message_id)[0].state == "bounced"
    assert _scores(db) == {DIRECT: (1, 0)}  # the recipient's fault, not the route's
