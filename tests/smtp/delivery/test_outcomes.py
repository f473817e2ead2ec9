"""Outcomes per destination: deferral and retry, bounces with exactly one DSN, never backscatter."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailferry.models import Alias, DailyStat, Message, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE, QUEUED
from smtp.delivery import context
from smtp.delivery.job import run
from smtp.routes import SRS_RETURN, Route
from smtp.srs import Srs
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids, message


def _make_due(db, message_id):
    past = utcnow() - timedelta(seconds=1)
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(next_attempt_at=past))
        for d in s.get(Message, message_id).deliveries:
            if d.next_attempt_at:
                d.next_attempt_at = past


def test_4xx_defers_then_delivers_on_the_next_attempt(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.data_replies.append("451 4.7.1 greylisted, come back later")
    message_id = world.seed([route])

    when = run(ctx, message_id)
    assert when is not None and when > utcnow() - timedelta(seconds=1)
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code, delivery.attempts) == (DEFERRED, 451, 1)
    assert message(db, message_id).state == QUEUED and message(db, message_id).lease_until is None
    assert run(ctx, message_id) == when  # not due yet: nothing is sent, the job is rescheduled

    _make_due(db, message_id)
    assert run(ctx, message_id) is None
    assert len(sink.messages) == 1
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.attempts) == (DELIVERED, 2)
    assert [a.outcome for a in attempts(db, delivery.id)] == [DEFERRED, DELIVERED]
    with db.session() as s:
        row = s.scalar(select(DailyStat).where(DailyStat.domain_id == 0))
    assert (row.deferred, row.forwarded) == (1, 1)


def test_only_undelivered_destinations_are_retried(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "team", "a@one.test", "b@two.test")
    internet.mx("one.test", (10, "mx.one.test", "127.0.0.2"))
    internet.mx("two.test", (10, "mx.two.test", "127.0.0.3"))
    one, two = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    two.handler.data_replies.append("452 4.3.1 out of storage")
    message_id = world.seed([route])

    run(ctx, message_id)
    _make_due(db, message_id)
    run(ctx, message_id)

    assert len(one.messages) == 1 and len(two.messages) == 1
    assert [d.state for d in deliveries(db, message_id)] == [DELIVERED, DELIVERED]


def test_5xx_bounces_with_exactly_one_dsn_to_the_sender(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    dest, sender = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    dest.handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 <nobody@dest.test>: no such user"
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code) == (BOUNCED, 550)
    assert message(db, message_id).state == DONE
    [dsn_id] = dsn_ids(db)
    assert run(ctx, dsn_id) is None
    assert run(ctx, message_id) is None  # settled: running again sends nothing new

    [bounce] = sender.messages
    assert (bounce.mail_from, bounce.rcpt_tos) == ("<>", ("alice@sender.test",))
    assert b"Content-Type: multipart/report; report-type=delivery-status" in bounce.data
    assert b"Final-Recipient: rfc822; hello@alias.test" in bounce.data
    assert b"Status: 5.1.1" in bounce.data and b"Action: failed" in bounce.data
    assert b"Diagnostic-Code: smtp; 550 5.1.1 <hello@alias.test>: no such user" in bounce.data
    assert b"nobody@dest.test" not in bounce.data  # the alias's destination stays private
    headers = ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    assert b"Content-Type: text/rfc822-headers" in bounce.data and headers in bounce.data
    assert dsn_ids(db) == [dsn_id] and dest.messages == []
    with db.session() as s:
        assert s.get(Alias, route.alias_id).bounced_count == 1
        assert s.scalar(select(DailyStat.bounced).where(DailyStat.domain_id == 0)) == 1


def test_no_dsn_for_a_null_sender(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2").handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 no such user"
    message_id = world.seed([route], mail_from="")

    assert run(ctx, message_id) is None
    assert deliveries(db, message_id)[0].state == BOUNCED
    assert dsn_ids(db) == []


def test_a_bounced_dsn_is_not_bounced_again(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    internet.sink("127.0.0.2").handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 no such user"
    internet.sink("127.0.0.3").handler.rcpt_replies["alice@sender.test"] = "550 5.1.1 gone too"
    run(ctx, world.seed([route]))
    [dsn_id] = dsn_ids(db)

    assert run(ctx, dsn_id) is None
    assert deliveries(db, dsn_id)[0].state == BOUNCED
    assert dsn_ids(db) == [dsn_id]


def test_lifetime_over_bounces_a_deferred_destination(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    internet.sink("127.0.0.2").handler.data_replies.append("451 4.3.0 still down")
    sender = internet.sink("127.0.0.3")
    message_id = world.seed([route])
    with db.session() as s:  # accepted longer ago than MAX_QUEUE_LIFETIME (1h here)
        s.execute(update(Message).where(Message.id == message_id).values(received_at=utcnow() - timedelta(hours=2)))

    assert run(ctx, message_id) is None
    [delivery] = deliveries(db, message_id)
    assert delivery.state == BOUNCED and delivery.last_reply.startswith("4.4.7 delivery time expired")
    [dsn_id] = dsn_ids(db)
    run(ctx, dsn_id)
    [bounce] = sender.messages
    assert b"Status: 4.4.7" in bounce.data


def test_mail_to_an_srs_address_returns_to_the_original_sender(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    dest, sender = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    run(ctx, world.seed([route]))
    srs_address = dest.messages[0].mail_from

    # dest.test bounces later, to the SRS envelope; inbound resolves it to an SRS_RETURN route
    original = Srs(ctx.settings.srs_secret).reverse(srs_address)
    returned = Route(srs_address, (original,), SRS_RETURN, route.domain_id)
    bounce = (b"From: MAILER-DAEMON@dest.test\r\nTo: " + srs_address.encode() + b"\r\n"
              b"Subject: Undeliverable\r\n\r\nmailbox full\r\n")
    message_id = world.seed([returned], mail_from="", raw=bounce)

    assert run(ctx, message_id) is None
    [got] = sender.messages
    assert (got.mail_from, got.rcpt_tos) == ("<>", ("alice@sender.test",))
    assert got.data.endswith(bounce)
    assert deliveries(db, message_id)[0].state == DELIVERED


def test_mixed_replies_in_one_transaction_settle_each_destination(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "team", "ok@dest.test", "gone@dest.test", "full@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    dest, sender = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    dest.handler.rcpt_replies["gone@dest.test"] = "550 5.1.1 no such user"
    dest.handler.rcpt_replies["full@dest.test"] = "452 4.2.2 mailbox full"
    message_id = world.seed([route])

    assert run(ctx, message_id) is not None  # one destination is still owed
    [got] = dest.messages
    assert got.rcpt_tos == ("ok@dest.test",)
    assert [d.state for d in deliveries(db, message_id)] == [DELIVERED, BOUNCED, DEFERRED]
    [dsn_id] = dsn_ids(db)
    run(ctx, dsn_id)
    [bounce] = sender.messages
    assert bounce.data.count(b"Final-Recipient:") == 1 and b"Status: 5.1.1" in bounce.data


def test_5xx_after_data_bounces_every_recipient_of_the_transaction(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "team", "a@dest.test", "b@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2").handler.data_replies.append("554 5.7.1 message rejected as spam")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None
    assert [(d.state, d.last_code) for d in deliveries(db, message_id)] == [(BOUNCED, 554), (BOUNCED, 554)]
    [dsn_id] = dsn_ids(db)
    assert len(deliveries(db, dsn_id)) == 1  # one DSN listing both


def test_dkim_off_sends_unsigned(dsettings, world, internet, db):
    ctx = context.configure(dsettings.replace(SMTP_ENABLE_DKIM=False))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    run(ctx, world.seed([route]))
    assert b"DKIM-Signature" not in sink.messages[0].data


def test_undecryptable_key_still_delivers_unsigned(dsettings, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    ctx = context.configure(dsettings.replace(SECRET_KEY="a-different-secret-key-987654"))
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])
    run(ctx, message_id)
    assert b"DKIM-Signature" not in sink.messages[0].data
    assert deliveries(db, message_id)[0].state == DELIVERED


def test_no_answer_to_the_final_dot_defers(dsettings, world, internet, db):
    ctx = context.configure(dsettings.replace(SMTP_CONNECT_TIMEOUT=1, DELIVERY_LEASE=2))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.stalling.set()
    message_id = world.seed([route])

    assert run(ctx, message_id) is not None
    sink.handler.stalling.clear()
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code) == (DEFERRED, None)
    assert "4.4.2" in delivery.last_reply and "timed out" in delivery.last_reply


def test_non_ascii_address_needs_smtputf8(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "jürgen@old.test", "jürgen@new.test")
    internet.mx("old.test", (10, "mx.old.test", "127.0.0.2"))
    internet.mx("new.test", (10, "mx.new.test", "127.0.0.3"))
    old, new = internet.sink("127.0.0.2"), internet.sink("127.0.0.3", smtputf8=True)
    message_id = world.seed([route])

    run(ctx, message_id)

    assert old.messages == [] and new.messages[0].rcpt_tos == ("jürgen@new.test",)
    assert [(d.state, d.last_code) for d in deliveries(db, message_id)] == [(BOUNCED, 553), (DELIVERED, 250)]
