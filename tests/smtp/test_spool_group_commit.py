"""Group commit: concurrent sessions share one transaction, and none of them hears 250 before its rows exist."""

from __future__ import annotations

import smtplib
import threading
import time

from sqlalchemy import func, insert, select, text

from harness.net import wait_for
from mailferry.models import Delivery, Message
from smtp.delivery.lease import claim_many
from smtp.routes import message_rows
from smtp.spool import Spooler, _stamp, new_message_id
from tests.smtp.test_server_accept import BODY, QUEUED_REPLY

SESSIONS = 12


def _send_concurrently(server, db, sessions: int) -> list[tuple[int, str, bool]]:
    """Each session sends one message; on its reply it looks the message up at once (its own connection)."""
    seen: list[tuple[int, str, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(sessions)

    def send(n: int) -> None:
        with smtplib.SMTP(*server, timeout=30) as client:
            client.ehlo("c.example.org")
            client.mail(f"s{n}@example.org")
            client.rcpt("team@alias.test")
            start.wait()
            code, reply = client.data(BODY + b"%d\r\n" % n)
            message_id = QUEUED_REPLY.match(reply).group(1).decode() if code == 250 else ""
            with db.session() as s:
                present = bool(message_id) and s.get(Message, message_id) is not None and bool(
                    s.scalar(select(func.count()).select_from(Delivery).where(Delivery.message_id == message_id)))
            with lock:
                seen.append((code, message_id, present))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def test_concurrent_sessions_share_a_commit_and_get_250_only_once_their_rows_exist(server, db, monkeypatch):
    batches: list[int] = []
    real_insert = Spooler._insert

    def slow_insert(self, batch, stamps=()):
        batches.append(len(batch))
        time.sleep(0.2)  # the first commit is slow: the sessions arriving meanwhile wait for the next one together
        real_insert(self, batch, stamps)

    monkeypatch.setattr(Spooler, "_insert", slow_insert)
    seen = _send_concurrently(server, db, SESSIONS)

    assert len(seen) == SESSIONS and all(code == 250 for code, _, _ in seen)
    assert all(present for _, _, present in seen), "a 250 went out before its message and deliveries were committed"
    assert len({mid for _, mid, _ in seen}) == SESSIONS
    assert sum(batches) == SESSIONS and max(batches) > 1 and len(batches) < SESSIONS


def test_every_message_of_a_busy_batch_gets_its_enqueued_at_stamp(server, db):
    seen = _send_concurrently(server, db, SESSIONS)
    ids = [mid for _, mid, _ in seen]

    def stamped() -> bool:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Message)
                            .where(Message.id.in_(ids), Message.enqueued_at.is_not(None))) == len(ids)

    wait_for(stamped, what="enqueued_at on every message")


def test_a_burst_of_sessions_to_a_new_alias_makes_one_lookup(server, db, monkeypatch):
    from smtp.recipients import RecipientResolver

    calls: list[str] = []
    real_resolve = RecipientResolver.resolve

    def slow_resolve(self, address):
        calls.append(address)
        time.sleep(0.2)  # every session's RCPT arrives while the first lookup runs
        return real_resolve(self, address)

    monkeypatch.setattr(RecipientResolver, "resolve", slow_resolve)
    seen = _send_concurrently(server, db, SESSIONS)

    assert all(code == 250 for code, _, _ in seen)
    assert len(calls) == 1


def _spooled(db, count: int) -> list[str]:
    ids = [new_message_id() for _ in range(count)]
    with db.engine.begin() as connection:
        connection.execute(insert(Message.__table__),
                           [message_rows(mid, mail_from="s@example.org", routes=[], raw=BODY)[0] for mid in ids])
    return ids


def _stamped(db, ids: list[str]) -> dict[str, bool]:
    with db.session() as s:
        return {mid: at is not None for mid, at in s.execute(select(Message.id, Message.enqueued_at)
                                                              .where(Message.id.in_(ids)))}


def test_the_stamp_does_not_wait_for_a_message_a_worker_holds_locked(db):
    held, free = _spooled(db, 2)
    with db.engine.connect() as worker:
        worker.execute(select(Message.id).where(Message.id == held).with_for_update())  # a claim in progress
        with db.engine.begin() as spool:
            if spool.dialect.name == "postgresql":  # fail, rather than hang, should it wait for the lock
                spool.execute(text("SET LOCAL lock_timeout = '2s'"))
            if spool.dialect.name == "sqlite":  # one writer at a time: the "worker" is only reading here
                worker.rollback()
            _stamp(spool, [held, free])
        worker.rollback()

    stamped = _stamped(db, [held, free])
    assert stamped[free]
    if db.engine.dialect.name == "postgresql":
        assert not stamped[held]  # left to the claim, which stamps what it takes


def test_a_claim_stamps_enqueued_at_when_the_spool_did_not(db):
    [mid] = _spooled(db, 1)
    with db.engine.begin() as connection:
        assert claim_many(connection, [mid], "worker-1", 300)

    assert _stamped(db, [mid]) == {mid: True}


def test_a_trickle_stamps_enqueued_at_with_the_next_commit_not_a_transaction_each(server, db, monkeypatch):
    alone: list[list[str]] = []
    real = Spooler._stamp_alone

    def counting(self, ids):
        alone.append(list(ids))
        real(self, ids)

    monkeypatch.setattr(Spooler, "_stamp_alone", counting)
    ids = []
    for _ in range(3):  # one at a time, well within STAMP_DELAY of each other
        ids.append(_send_concurrently(server, db, 1)[0][1])
        time.sleep(0.05)

    wait_for(lambda: all(_stamped(db, ids).values()), what="enqueued_at on every message")
    assert len(alone) <= 1 and all(len(batch) == 1 for batch in alone)  # only the last one waited alone
