"""No 250 without a commit: database down or broken, Redis down, an unexpected error in the handler."""

from __future__ import annotations

import logging
import smtplib
import threading
from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import func, select, text

from harness.net import wait_for
from mailferry.models import Message
from mailferry.queue import get_queue, job_id_for, reconcile
from smtp import replies
from tests.smtp.test_server_accept import BODY, QUEUED_REPLY
from tests.smtp.test_server_session import data, session


def message_ids(db) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Message.id)))


def unreachable_database_url(db_url: str, tmp_path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}"  # a directory: the file cannot be opened
    return db_url.rsplit("/", 1)[0] + "/mf_no_such_database"


def test_database_down_at_rcpt_gives_451(world, db_url, tmp_path, start_server, raw_client):
    client = raw_client(start_server(DATABASE_URL=unreachable_database_url(db_url, tmp_path)))
    client.cmd("EHLO c.example.org")
    client.cmd("MAIL FROM:<s@example.org>")
    assert client.cmd("RCPT TO:<john@alias.test>") == replies.TEMPORARY_FAILURE
    assert client.cmd("NOOP").startswith("250")


def test_database_failing_at_data_gives_451_and_no_row_and_no_job(server, db, raw_client, redis_conn, settings):
    client = raw_client()
    session(client)
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE messages RENAME TO messages_away"))
    try:
        reply = data(client, BODY)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE messages_away RENAME TO messages"))
    assert reply == replies.TEMPORARY_FAILURE
    assert message_ids(db) == []
    assert get_queue(redis_conn, settings.RQ_QUEUE).count == 0
    # the database is back: the same session can send
    session(client)
    assert data(client, BODY).startswith("250 ")
    assert len(message_ids(db)) == 1


def test_redis_down_still_accepts_and_the_reconciler_enqueues_later(server, db, redis_server, settings, caplog):
    caplog.set_level(logging.WARNING, logger="smtp.spool")
    redis_server.stop()
    try:
        with smtplib.SMTP(*server, timeout=10) as client:
            client.ehlo("c.example.org")
            client.mail("s@example.org")
            client.rcpt("john@alias.test")
            code, reply = client.data(BODY)
        assert code == 250
        message_id = QUEUED_REPLY.match(reply).group(1).decode()
        with db.session() as s:
            message = s.get(Message, message_id)
            assert message.raw == BODY and message.enqueued_at is None
        wait_for(lambda: any(r.msg.startswith("enqueue failed") and getattr(r, "message_id", None) == message_id
                             for r in caplog.records), what="the failed enqueue")
    finally:
        redis_server.start()
    from mailferry.queue import make_redis
    redis = make_redis(redis_server.url)
    try:
        assert not Job.exists(job_id_for(message_id), connection=redis)
        queue = get_queue(redis, settings.RQ_QUEUE)
        assert reconcile(db, queue, grace=timedelta(0)) == [message_id]
        assert Job.fetch(job_id_for(message_id), connection=redis).args == (message_id,)
    finally:
        redis.close()


def test_unexpected_error_answers_451_without_leaking_it(server, raw_client, monkeypatch, db):
    def explode(raw, max_received):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("smtp.handler.check_content", explode)
    client = raw_client()
    session(client)
    reply = data(client, BODY)
    assert reply == replies.TEMPORARY_FAILURE
    assert "secret" not in reply
    assert client.cmd("NOOP").startswith("250")
    assert message_ids(db) == []


def test_concurrent_sessions_are_all_committed(server, db):
    replies_seen: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        with smtplib.SMTP(*server, timeout=30) as client:
            client.ehlo("c.example.org")
            for m in range(5):
                client.mail(f"s{n}@example.org")
                client.rcpt("team@alias.test")
                result = client.data(BODY + b"%d-%d\r\n" % (n, m))
                with lock:
                    replies_seen.append(result)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies_seen) == 50 and all(code == 250 for code, _ in replies_seen)
    ids = {QUEUED_REPLY.match(reply).group(1).decode() for _, reply in replies_seen}
    assert len(ids) == 50
    with db.session() as s:
        assert set(s.scalars(select(Message.id))) == ids
        assert s.scalar(select(func.count()).select_from(Message).where(Message.size == len(BODY) + 5)) == 50


@pytest.mark.parametrize("mail_from", ["<>", "<s@example.org>"])
def test_srs_bounce_is_accepted_and_routed_back(world, start_server, raw_client, db, mail_from):
    from harness.settings import make_settings
    from mailferry.models import Delivery
    from smtp.routes import SRS_RETURN
    from smtp.srs import Srs

    address = start_server()
    srs_address = Srs(make_settings().srs_secret).forward("orig+x/y@example.org", "alias.test")
    client = raw_client(address)
    session(client, rcpts=[srs_address], mail_from=mail_from)
    reply = data(client, BODY)
    message_id = reply.rsplit(" ", 1)[1]
    with db.session() as s:
        delivery = s.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
        assert (delivery.recipient, delivery.destination, delivery.kind) == (srs_address, "orig+x/y@example.org", SRS_RETURN)
