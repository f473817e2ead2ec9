"""STARTTLS to destination MX hosts: used whenever offered, required when SMTP_REQUIRE_TLS is on."""

from __future__ import annotations

from mailferry.models.message import DEFERRED, DELIVERED
from smtp.delivery import context
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import attempts, deliveries
from tests.smtp.delivery.tls import server_context


def test_starttls_is_used_when_offered(ctx, world, internet, db, tmp_path):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2", tls_context=server_context(str(tmp_path)))

    message_id = world.seed([route])
    run(ctx, message_id)

    [got] = sink.messages
    assert got.tls
    [delivery] = deliveries(db, message_id)
    assert delivery.state == DELIVERED and delivery.tls
    assert attempts(db, delivery.id)[0].tls


def test_plaintext_when_tls_is_not_offered_and_not_required(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    message_id = world.seed([route])
    run(ctx, message_id)

    assert not sink.messages[0].tls and not deliveries(db, message_id)[0].tls


def test_required_tls_skips_hosts_without_it(dsettings, world, internet, db, tmp_path):
    ctx = context.configure(dsettings.replace(SMTP_REQUIRE_TLS=True))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "plain.dest.test", "127.0.0.2"), (20, "secure.dest.test", "127.0.0.3"))
    plain = internet.sink("127.0.0.2")
    secure = internet.sink("127.0.0.3", tls_context=server_context(str(tmp_path)))

    message_id = world.seed([route])
    run(ctx, message_id)

    assert plain.messages == [] and len(secure.messages) == 1 and secure.messages[0].tls


def test_required_tls_defers_when_no_host_offers_it(dsettings, world, internet, db):
    ctx = context.configure(dsettings.replace(SMTP_REQUIRE_TLS=True))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "plain.dest.test", "127.0.0.2"))
    plain = internet.sink("127.0.0.2")

    message_id = world.seed([route])
    assert run(ctx, message_id) is not None

    assert plain.messages == []
    [delivery] = deliveries(db, message_id)
    assert delivery.state == DEFERRED and "4.7.10" in delivery.last_reply
