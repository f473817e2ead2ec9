"""A 'still trying' notice end to end: mail deferred by the destination for longer than DELAY_WARNING_TIME,
the notice delivered by the delivery job to the owner's own mailbox, nothing to the sender."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

from sqlalchemy import update

from app.services.delay_warnings import warn_late
from mailferry.models import Message, utcnow
from mailferry.models.message import DEFERRED
from mailferry.models.notification import DELAY_WARNING
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import deliveries


def test_the_owner_gets_one_still_trying_message_and_the_sender_nothing(ctx, world, internet, db, dsettings):
    route = world.alias(world.domain("alias.test", dkim=False), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.mx("example.test", (10, "mx.example.test", "127.0.0.3"))
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.4"))
    dest, owner, sender = internet.sink("127.0.0.2"), internet.sink("127.0.0.3"), internet.sink("127.0.0.4")
    dest.handler.rcpt_replies["bob@dest.test"] = "451 4.2.1 mailbox temporarily unavailable"
    message_id = world.seed([route])
    run(ctx, message_id)
    [d] = deliveries(db, message_id)
    assert d.state == DEFERRED
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(received_at=utcnow() - timedelta(hours=5)))

    with db.session() as s:
        [notice_id] = warn_late(s, dsettings)
        assert warn_late(s, dsettings) == []
    assert run(ctx, notice_id) is None

    [received] = owner.messages
    assert received.rcpt_tos == ("owner@example.test",) and received.mail_from == "postmaster@mx.mailferry.test"
    mail = message_from_bytes(received.data, policy=default_policy)
    assert mail["X-Mailferry-Notice"] == DELAY_WARNING and mail["Subject"] == "Still trying to deliver mail to bob@dest.test"
    text = mail.get_body(("plain",)).get_content()
    assert "hello@alias.test -> bob@dest.test" in text and "451 4.2.1 mailbox temporarily unavailable" in text
    assert "Lunch on Friday" not in received.data.decode() and "caf" not in text  # never the message itself
    assert sender.messages == [] and dest.messages == []
