"""Each delivery mode end to end, in-process, against loopback servers: relays that need STARTTLS + AUTH or
implicit TLS (certificates from a test CA trusted through SMTP_RELAY_CA_FILE), destination MX hosts that
defer, block our IP or reject the user."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE
from smtp.delivery.job import run
from smtp.srs import Srs
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import attempts, deliveries, dkim_verifies, dsn_ids, message
from tests.smtp.delivery.relays import USER, primary_env, relays_env


def _headers(data: bytes):
    return message_from_bytes(data, policy=default_policy)


def test_relay_mode_starttls_auth_plain_keeps_srs_and_headers(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5", mechanisms=("PLAIN",))
    ctx = configure(SMTP_DELIVERY_MODE="relay", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    [got] = relay.messages
    assert [(login.mechanism, login.user) for login in relay.handler.logins] == [("PLAIN", USER)]
    assert got.tls and got.rcpt_tos == ("bob@dest.test",)
    assert Srs(ctx.settings.srs_secret).reverse(got.mail_from) == "alice@sender.test"
    assert got.data.endswith(ORIGINAL)
    assert dkim_verifies(got.data, ctx.settings)
    assert mx.messages == []
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.route, delivery.tls) == (DELIVERED, "relay:primary", True)
    assert [a.route for a in attempts(db, delivery.id)] == ["relay:primary"]


def test_relay_mode_implicit_tls_auth_login_rewrites_the_sender(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.6", mode="ssl", mechanisms=("LOGIN",))
    ctx = configure(SMTP_DELIVERY_MODE="relay", **relays_env(relay.config("gmail", from_policy="rewrite")))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    [got] = relay.messages
    assert [(login.mechanism, login.user) for login in relay.handler.logins] == [("LOGIN", USER)]
    assert got.mail_from == USER
    headers = _headers(got.data)
    assert headers["From"] == f'"Alice Sender via alias.test" <{USER}>'
    assert headers["Reply-To"] == "Alice Sender <alice@sender.test>"
    assert headers["X-Original-From"] == "Alice Sender <alice@sender.test>"
    assert got.data.endswith(ORIGINAL.split(b"\r\n\r\n", 1)[1])  # the body is untouched
    assert dkim_verifies(got.data, ctx.settings)
    assert deliveries(db, message_id)[0].route == "relay:gmail"


def test_hybrid_falls_back_to_the_relay_when_the_mx_defers(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")
    mx.handler.data_replies.append("451 4.7.1 greylisted, come back later")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None  # the same pass: no retry needed

    assert mx.messages == [] and len(relay.messages) == 1
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.route) == (DELIVERED, "relay:primary")
    assert delivery.attempts == 1  # one pass, whatever routes it took
    assert [(a.route, a.code, a.outcome) for a in attempts(db, delivery.id)] == [
        ("mx:mx.dest.test", 451, DEFERRED), ("relay:primary", 250, DELIVERED)]


def test_hybrid_falls_back_when_the_mx_cannot_be_reached(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", SMTP_CONNECT_TIMEOUT="2", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.4"))  # nothing listens there
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    assert len(relay.messages) == 1 and deliveries(db, message_id)[0].route == "relay:primary"


def test_hybrid_falls_back_when_the_mx_blocks_our_ip(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")
    mx.handler.rcpt_replies["bob@dest.test"] = "554 5.7.1 Service unavailable; client host [127.0.0.1] blocked"
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    assert mx.messages == [] and [m.rcpt_tos for m in relay.messages] == [("bob@dest.test",)]
    assert deliveries(db, message_id)[0].state == DELIVERED
    assert dsn_ids(db) == []


def test_hybrid_bounces_a_recipient_5xx_without_fallback_and_with_one_dsn(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")
    mx.handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 <nobody@dest.test>: no such user"
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    assert relay.messages == []
    assert [m.rcpt_tos for m in mx.messages] == [("bob@dest.test",)]
    nobody, bob = deliveries(db, message_id)
    assert (nobody.state, nobody.last_code, nobody.route) == (BOUNCED, 550, "mx:mx.dest.test")
    assert (bob.state, bob.route) == (DELIVERED, "mx:mx.dest.test")
    assert message(db, message_id).state == DONE
    assert len(dsn_ids(db)) == 1


def test_direct_mode_never_uses_the_relays(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="direct", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2").handler.data_replies.append("451 4.7.1 greylisted")
    message_id = world.seed([route])

    assert run(ctx, message_id) is not None  # deferred, retried later
    assert relay.messages == [] and relay.connections == 0
    assert deliveries(db, message_id)[0].route == "mx:mx.dest.test"


def test_the_from_rewrite_happens_only_when_the_inbound_checks_asked_for_it(configure, world, internet, db):
    ctx = configure(SMTP_DELIVERY_MODE="direct")
    domain_id = world.domain("alias.test")
    route = world.alias(domain_id, "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    mx = internet.sink("127.0.0.2")

    run(ctx, world.seed([route]))  # headers untouched
    run(ctx, world.seed([route], findings={"rewrite_from": True}))  # smtp/inbound decided it at receipt

    untouched, rewritten = mx.messages
    assert untouched.data.endswith(ORIGINAL)
    headers = _headers(rewritten.data)
    assert headers["From"] == '"Alice Sender via alias.test" <hello@alias.test>'
    assert headers["Reply-To"] == "Alice Sender <alice@sender.test>"
    assert headers["X-Original-From"] == "Alice Sender <alice@sender.test>"
    assert Srs(ctx.settings.srs_secret).reverse(rewritten.mail_from) == "alice@sender.test"
    assert dkim_verifies(rewritten.data, ctx.settings)


def test_stats_after_hybrid_deliveries(configure, world, internet, relay_server, db):
    from mailferry.delivery_stats import delivery_stats

    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "team", "bob@good.test", "carol@busy.test")
    internet.mx("good.test", (10, "mx.good.test", "127.0.0.2"))
    internet.mx("busy.test", (10, "mx.busy.test", "127.0.0.3"))
    good, busy = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    busy.handler.data_replies.append("421 4.7.0 too many connections from your host")
    assert run(ctx, world.seed([route])) is None
    assert run(ctx, world.seed([world.alias(world.domain("other.test"), "hi", "dan@good.test")])) is None

    stats = delivery_stats(ctx.db, ctx.redis, ctx.settings)

    assert len(good.messages) == 2 and busy.messages == [] and len(relay.messages) == 1
    assert stats["mode"] == "hybrid"
    assert stats["direct"] == {"sent": 2, "failed": 1, "deferred": 1, "bounced": 0}  # the 421 before the relay
    assert [(r["name"], r["sent"], r["failed"], r["circuit"]["state"]) for r in stats["relays"]] == [
        ("primary", 1, 0, "closed")]
    assert stats["dkim"] == {"signed": 3, "unsigned": 0}
    assert (stats["mx"]["lookups"], stats["mx"]["cache_hits"], stats["mx"]["cache_size"]) == (2, 1, 2)
    rates = {d["domain"]: (d["success_rate"], d["direct_success_rate"], d["relay_success_rate"]) for d in stats["domains"]}
    assert rates == {"good.test": (1.0, 1.0, None), "busy.test": (0.5, 0.0, 1.0)}


def test_hybrid_falls_back_when_no_mx_host_has_an_address(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")
    ctx = configure(SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.dns.add("dest.test", "MX", "10 mx.nowhere.test.")  # a temporary failure on our side
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    [delivery] = deliveries(db, message_id)
    assert [(a.route, a.outcome) for a in attempts(db, delivery.id)] == [("", DEFERRED), ("relay:primary", DELIVERED)]
    assert len(relay.messages) == 1
