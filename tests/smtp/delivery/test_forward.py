"""The forward transform end to end through the job: SRS envelope, DKIM, bytes intact, grouping per domain."""

from __future__ import annotations

import dkim
from sqlalchemy import select

from app.services.dkim_keys import generate_key, txt_record
from mailferry.crypto import decrypt
from mailferry.models import Alias, DailyStat, DkimKey
from mailferry.models.message import DELIVERED, DONE
from smtp.delivery.job import run
from smtp.srs import Srs
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import attempts, deliveries, dkim_verifies, message


def test_forward_is_srs_rewritten_dkim_signed_and_intact(ctx, world, internet, db):
    alias_domain = world.domain("alias.test")
    route = world.alias(alias_domain, "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    message_id = world.seed([route])

    assert run(ctx, message_id) is None

    [got] = sink.messages
    assert got.rcpt_tos == ("bob@dest.test",)
    assert got.mail_from.startswith("SRS0=") and got.mail_from.endswith("@alias.test")
    assert Srs(ctx.settings.srs_secret).reverse(got.mail_from) == "alice@sender.test"
    assert got.helo == "mx.mailferry.test"
    assert got.data.endswith(ORIGINAL)  # headers and body byte for byte
    prepended = got.data[: -len(ORIGINAL)]
    assert prepended.startswith(b"DKIM-Signature: ") and b"\r\nReceived: from client.sender.test" in prepended
    assert b"by mx.mailferry.test (Mailferry) with ESMTP id " + message_id.encode() in prepended
    assert b"for <hello@alias.test>" in prepended
    assert prepended.endswith(b"\r\nX-Mailferry-Loop: <hello@alias.test>\r\n")  # inbound's loop check reads it
    assert dkim_verifies(got.data, ctx.settings)
    assert b"d=alias.test" in prepended

    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code, delivery.route) == (DELIVERED, 250, "mx:mx.dest.test")
    [attempt] = attempts(db, delivery.id)
    assert (attempt.outcome, attempt.code, attempt.route, attempt.tls) == (DELIVERED, 250, "mx:mx.dest.test", False)
    assert message(db, message_id).state == DONE
    with db.session() as s:
        stats = {row.domain_id: row for row in s.scalars(select(DailyStat))}
        alias = s.get(Alias, route.alias_id)
    assert {k: (v.forwarded, v.direct, v.dkim_signed) for k, v in stats.items()} == {0: (1, 1, 1), alias_domain: (1, 1, 1)}
    assert alias.forwarded_count == 1 and alias.last_used_at is not None


def test_the_senders_own_signature_still_verifies(ctx, world, internet, db):
    sender_domain = world.domain("sender.test")
    with db.session() as s:
        key = s.scalar(select(DkimKey).where(DkimKey.domain_id == sender_domain))
        pem = decrypt(ctx.settings.SECRET_KEY, key.private_key_enc)
    # simple/simple: any change to a signed header or the body, even whitespace, breaks it
    signature = dkim.sign(ORIGINAL, key.selector.encode(), b"sender.test", pem, canonicalize=(b"simple", b"simple"))
    original = signature + ORIGINAL
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, world.seed([route], raw=original))

    [got] = sink.messages
    assert got.data.endswith(original)
    assert dkim_verifies(got.data, ctx.settings, idx=0)  # ours (d=alias.test)
    assert dkim_verifies(got.data, ctx.settings, idx=1)  # the sender's


def test_several_destinations_and_domains_in_one_message(ctx, world, internet, db):
    first = world.alias(world.domain("alias.test"), "team", "x@one.test", "y@one.test", "z@two.test")
    second = world.alias(world.domain("other.test"), "info", "w@one.test")
    internet.mx("one.test", (10, "mx.one.test", "127.0.0.3"))
    internet.mx("two.test", (10, "mx.two.test", "127.0.0.4"))
    one, two = internet.sink("127.0.0.3"), internet.sink("127.0.0.4")

    message_id = world.seed([first, second])
    assert run(ctx, message_id) is None

    assert len(one.messages) == 2 and len(two.messages) == 1
    assert one.messages[0].session_id == one.messages[1].session_id  # one connection for the domain
    by_rcpts = {m.rcpt_tos: m for m in one.messages + two.messages}
    assert set(by_rcpts) == {("x@one.test", "y@one.test"), ("w@one.test",), ("z@two.test",)}
    assert by_rcpts[("w@one.test",)].mail_from.endswith("@other.test")
    assert b"d=other.test" in by_rcpts[("w@one.test",)].data
    assert by_rcpts[("x@one.test", "y@one.test")].mail_from.endswith("@alias.test")
    for got in by_rcpts.values():
        assert got.data.endswith(ORIGINAL)
        assert dkim_verifies(got.data, ctx.settings)
    assert [d.state for d in deliveries(db, message_id)] == [DELIVERED] * 4


def test_unsigned_when_the_domain_has_no_key_or_dkim_is_off(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test", dkim=False), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, world.seed([route]))

    [got] = sink.messages
    assert got.data.startswith(b"Received: ") and got.data.endswith(ORIGINAL)
    with db.session() as s:
        assert s.scalar(select(DailyStat.dkim_unsigned).where(DailyStat.domain_id == 0)) == 1


def test_rotated_key_signs_with_the_active_selector(ctx, world, internet, db):
    domain_id = world.domain("alias.test")
    with db.session() as s:
        from mailferry.models import Domain

        new = generate_key(s, s.get(Domain, domain_id), ctx.settings.SECRET_KEY, activate=True)
        record, value = txt_record(new, "alias.test")
        selector = new.selector
    internet.dns.add(record, "TXT", value)
    route = world.alias(domain_id, "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, world.seed([route]))

    assert f"s={selector};".encode() in sink.messages[0].data
    assert dkim_verifies(sink.messages[0].data, ctx.settings)


def test_mail_already_srs_rewritten_by_another_forwarder_becomes_srs1(ctx, world, internet, db):
    upstream = Srs("another-forwarders-secret").forward("alice@sender.test", "upstream.test")
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, world.seed([route], mail_from=upstream))

    envelope = sink.messages[0].mail_from
    assert upstream.startswith("SRS0=") and envelope.startswith("SRS1=") and envelope.endswith("@alias.test")
    assert Srs(ctx.settings.srs_secret).reverse(envelope) == upstream  # one hop back: to the upstream forwarder
