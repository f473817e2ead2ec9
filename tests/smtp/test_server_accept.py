"""Accepting a message over real SMTP: the reply, the rows it leaves, the RQ job."""

from __future__ import annotations

import re
import smtplib

from rq.job import Job
from sqlalchemy import select

from harness.net import wait_for
from mailferry.models import Delivery, Message
from mailferry.models.message import PENDING, QUEUED
from mailferry.queue import DELIVER_JOB, job_id_for
from smtp.routes import FORWARD

BODY = b"From: sender@example.org\r\nTo: john@alias.test\r\nSubject: hello\r\nMessage-ID: <m1@example.org>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nHi.\r\n"
QUEUED_REPLY = re.compile(rb"^2\.0\.0 Ok: queued as ([A-Z2-7]{16})$")


def send(server, mail_from, rcpts, body=BODY):
    with smtplib.SMTP(*server, timeout=10) as client:
        client.ehlo("client.example.org")
        client.mail(mail_from)
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            assert code == 250, (rcpt, code, text)
        code, text = client.data(body)
    return code, text


def test_accepted_message_is_committed_with_deliveries_and_enqueued_by_id(server, world, db, redis_conn):
    code, text = send(server, "sender@example.org", ["john@alias.test", "team@alias.test"])
    assert code == 250
    message_id = QUEUED_REPLY.match(text).group(1).decode()

    with db.session() as s:
        message = s.get(Message, message_id)
        assert message.state == QUEUED
        assert message.mail_from == "sender@example.org"
        assert message.rcpt_tos == ["john@alias.test", "team@alias.test"]
        assert message.raw == BODY
        assert message.size == len(BODY)
        assert message.helo == "client.example.org"
        assert message.peer == "127.0.0.1"
        assert message.subject == "hello"
        assert message.message_id_header == "<m1@example.org>"
        assert message.used_tls is False
        deliveries = s.scalars(select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)).all()
        assert [(d.recipient, d.destination, d.destination_domain, d.kind, d.state, d.alias_id) for d in deliveries] == [
            ("john@alias.test", "john@dest.test", "dest.test", FORWARD, PENDING, world.aliases["john"]),
            ("team@alias.test", "a@dest.test", "dest.test", FORWARD, PENDING, world.aliases["team"]),
            ("team@alias.test", "b@other.test", "other.test", FORWARD, PENDING, world.aliases["team"]),
        ]
        assert all(d.domain_id == world.domain_id for d in deliveries)

    job = wait_for(lambda: _job(redis_conn, message_id), what="the RQ job")
    assert job.func_name == DELIVER_JOB
    assert job.args == (message_id,)
    assert job.kwargs == {}
    stamped = wait_for(lambda: _enqueued_at(db, message_id), what="enqueued_at")
    assert stamped is not None


def _job(redis_conn, message_id):
    try:
        return Job.fetch(job_id_for(message_id), connection=redis_conn)
    except Exception:
        return None


def _enqueued_at(db, message_id):
    with db.session() as s:
        return s.get(Message, message_id).enqueued_at


def test_null_sender_is_accepted_and_spooled_as_empty(server, db):
    code, text = send(server, "<>", ["john@alias.test"])
    assert code == 250
    message_id = QUEUED_REPLY.match(text).group(1).decode()
    with db.session() as s:
        assert s.get(Message, message_id).mail_from == ""


def test_several_messages_in_one_session_each_get_their_own_id(server, db):
    ids = []
    with smtplib.SMTP(*server, timeout=10) as client:
        client.ehlo("client.example.org")
        for n in range(3):
            client.mail("s@example.org")
            client.rcpt("john@alias.test")
            code, text = client.data(BODY + b"n=%d\r\n" % n)
            assert code == 250
            ids.append(QUEUED_REPLY.match(text).group(1).decode())
    assert len(set(ids)) == 3
    with db.session() as s:
        assert [s.get(Message, mid).raw for mid in ids] == [BODY + b"n=%d\r\n" % n for n in range(3)]


def test_duplicate_recipient_is_delivered_once(server, db):
    code, text = send(server, "s@example.org", ["john@alias.test", "JOHN@alias.test"])
    message_id = QUEUED_REPLY.match(text).group(1).decode()
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message.rcpt_tos == ["john@alias.test"]
        assert len(message.deliveries) == 1


def test_postmaster_of_a_hosted_domain_reaches_its_owner(server, world, db):
    code, text = send(server, "reporter@example.org", ["postmaster@alias.test"])
    assert code == 250
    message_id = QUEUED_REPLY.match(text).group(1).decode()
    with db.session() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
        assert (delivery.destination, delivery.kind, delivery.alias_id) == ("owner@example.org", FORWARD, None)
