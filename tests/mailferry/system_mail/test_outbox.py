"""Mail from Mailferry itself goes through the queue and the router like forwarded mail: signed with the
sender domain's key when there is one, never bounced, not counted as forwarded."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from sqlalchemy import func, select

from mailferry.models import DailyStat, Delivery
from mailferry.models.message import BOUNCED, DELIVERED, DONE
from mailferry.system_mail import SYSTEM_KIND, SystemMessage, send_system_message
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import deliveries, dkim_verifies, dsn_ids, message

NOTICE = SystemMessage(to="owner@dest.test", subject="Confirm your address", text="Open https://x.test/c/1\n",
                       html="<p>Open <a href='https://x.test/c/1'>the link</a></p>", kind="confirmation")


def test_a_system_message_is_queued_delivered_signed_and_not_counted(ctx, world, internet, db):
    world.domain("mailferry.test")  # the domain of SMTP_HOSTNAME (mx.mailferry.test) has no key: ...
    host_domain = world.domain("mx.mailferry.test")  # ... the key of postmaster@'s own domain signs
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    message_id = send_system_message(db, ctx.settings, NOTICE, domain_id=host_domain)
    assert run(ctx, message_id) is None

    [got] = sink.messages
    assert got.mail_from == "postmaster@mx.mailferry.test" and got.rcpt_tos == ("owner@dest.test",)
    assert dkim_verifies(got.data, ctx.settings)
    assert b"d=mx.mailferry.test" in got.data.split(b"\r\n\r\n", 1)[0]
    parsed = message_from_bytes(got.data, policy=default_policy)
    assert parsed["From"] == "Mailferry <postmaster@mx.mailferry.test>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Mailferry-Notice"] == "confirmation"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == NOTICE.text
    assert "the link" in parsed.get_body(("html",)).get_content()
    [delivery] = deliveries(db, message_id)
    assert (delivery.kind, delivery.state, delivery.domain_id) == (SYSTEM_KIND, DELIVERED, host_domain)
    assert message(db, message_id).state == DONE
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DailyStat)) == 0


def test_system_mail_from_setting_and_unsigned_without_a_key(configure, internet, db):
    ctx = configure(SYSTEM_MAIL_FROM='"Ferry Ops" <ops@ops.test>')
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")

    run(ctx, send_system_message(db, ctx.settings, NOTICE))

    [got] = sink.messages
    assert got.mail_from == "ops@ops.test"
    assert not got.data.startswith(b"DKIM-Signature")
    assert message_from_bytes(got.data, policy=default_policy)["From"] == 'Ferry Ops <ops@ops.test>'


def test_a_refused_system_message_is_never_bounced(ctx, internet, db):
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    sink.handler.rcpt_replies["owner@dest.test"] = "550 5.1.1 no such user"

    message_id = send_system_message(db, ctx.settings, NOTICE)
    run(ctx, message_id)

    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_code) == (BOUNCED, 550)
    assert dsn_ids(db) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1

