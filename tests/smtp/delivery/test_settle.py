"""Settling a delivery pass (smtp/delivery/settle.py): what is written for each outcome, on both of its paths
(`known`: the pass saw every open delivery, three statements; `read`: the deliveries read back under the lease),
and how many statements a batch costs per message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select, update

from harness.settings import make_settings
from mailferry.models import Alias, DailyStat, Delivery, Message, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE, PENDING, QUEUED
from mailferry.queue import enqueue_messages, job_id_for
from smtp.delivery import job, lease
from smtp.delivery.load import snapshots
from smtp.delivery.outcome import Reply
from smtp.delivery.record import Attempt
from smtp.delivery.senders import Snapshot
from smtp.delivery.settle import Settled, counted, record_delivered, settle
from smtp.delivery.tally import Tally
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids, message

OWNER = "worker-under-test"
OK = Reply(250, "2.0.0 OK queued")
LATER = Reply(451, "4.3.0 try later")
GONE = Reply(550, "5.1.1 no such user")
SECOND = timedelta(seconds=1)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent on `engine` meanwhile, whitespace collapsed (an executemany counts once)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def kinds(seen: list[str]) -> list[str]:
    """"UPDATE messages", "SELECT deliveries", "INSERT INTO delivery_attempts", ..."""
    out = []
    for sql in seen:
        words = sql.split()
        if words[0] == "SELECT":
            out.append(f"SELECT {words[words.index('FROM') + 1]}")
        else:
            out.append(" ".join(words[:3] if words[0] == "INSERT" else words[:2]))
    return out


@pytest.fixture(params=["known", "read"])
def path(request) -> str:
    return request.param


def claimed(db, message_id: str, path: str = "known") -> Snapshot:
    with db.engine.begin() as conn:
        snap = snapshots(conn, lease.claim_many(conn, [message_id], OWNER, 60))[message_id]
    return snap if path == "known" else replace(snap, all_open_due=False)


def tried(snap: Snapshot, *replies: Reply, **fields) -> list[Attempt]:
    return [Attempt(t, r, mx_host=f"mx.{t.destination_domain}", tls=True, dkim_signed=True, **fields)
            for t, r in zip(snap.targets, replies, strict=True)]


def settled_by(db, snap: Snapshot, attempts_: list[Attempt], settings, path: str, tally: Tally | None = None,
               recorded: set[int] = frozenset()) -> Settled | None:
    with statements(db.engine) as seen:
        result = settle(db.engine, snap, attempts_, recorded, owner=OWNER, settings=settings, tally=tally)
    read = "SELECT deliveries" in kinds(seen)
    assert read == (path == "read"), kinds(seen)
    return result


def within(value: datetime, start: datetime, wait: timedelta) -> bool:
    return start + wait <= value <= utcnow() + wait


@pytest.fixture
def alias_domain(world) -> int:
    return world.domain("alias.test", dkim=False)


def test_a_delivered_message_is_done_in_three_statements_and_counted_in_the_tally(db, world, dsettings, alias_domain):
    route = world.alias(alias_domain, "hello", "bob@dest.test")
    message_id = world.seed([route])
    snap, tally = claimed(db, message_id), Tally()

    with statements(db.engine) as seen:
        assert settle(db.engine, snap, tried(snap, OK), set(), owner=OWNER, settings=dsettings,
                      tally=tally) == Settled(None)

    assert kinds(seen) == ["UPDATE messages", "UPDATE deliveries", "INSERT INTO delivery_attempts"]
    m = message(db, message_id)
    assert (m.state, m.attempts, m.lease_owner, m.lease_until, m.next_attempt_at) == (DONE, 1, None, None, None)
    [d] = deliveries(db, message_id)
    assert (d.state, d.attempts, d.last_code, d.last_reply, d.route, d.tls, d.next_attempt_at) == \
        (DELIVERED, 1, 250, "2.0.0 OK queued", "mx:mx.dest.test", True, None)
    assert d.delivered_at == d.updated_at == m.completed_at
    assert [(a.outcome, a.code, a.route, a.tls) for a in attempts(db, d.id)] == [(DELIVERED, 250, "mx:mx.dest.test", True)]
    assert tally.daily == {alias_domain: Counter(forwarded=1, direct=1, dkim_signed=1)}
    assert tally.aliases[route.alias_id].forwarded == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DailyStat)) == 0  # the batch writes them at its end


def test_without_a_tally_the_counters_are_written_with_the_outcome(db, world, dsettings, alias_domain, path):
    route = world.alias(alias_domain, "hello", "bob@dest.test")
    message_id = world.seed([route])
    snap = claimed(db, message_id, path)

    assert settled_by(db, snap, tried(snap, OK), dsettings, path) == Settled(None)

    with db.session() as s:
        daily = {row.domain_id: (row.forwarded, row.direct, row.dkim_signed) for row in s.scalars(select(DailyStat))}
        alias = s.get(Alias, route.alias_id)
    assert daily == {0: (1, 1, 1), alias_domain: (1, 1, 1)}
    assert (alias.forwarded_count, alias.bounced_count) == (1, 0) and alias.last_used_at is not None


def test_a_deferral_waits_as_the_retry_schedule_says(db, world, env, alias_domain, path):
    settings = make_settings(**{**env, "RETRY_SCHEDULE": "1m,5m"})
    message_id = world.seed([world.alias(alias_domain, "hello", "bob@dest.test")])

    for tries, wait in ((1, timedelta(minutes=1)), (2, timedelta(minutes=5))):
        start = utcnow()
        snap = claimed(db, message_id, path)
        settled = settled_by(db, snap, tried(snap, LATER), settings, path)

        [d] = deliveries(db, message_id)
        m = message(db, message_id)
        assert (d.state, d.attempts, d.last_code, d.delivered_at) == (DEFERRED, tries, 451, None)
        assert within(d.next_attempt_at, start, wait)
        assert settled == Settled(d.next_attempt_at)
        assert (m.state, m.attempts, m.next_attempt_at, m.lease_owner, m.lease_until) == \
            (QUEUED, tries, d.next_attempt_at, None, None)
        with db.engine.begin() as conn:  # due again
            conn.execute(update(Delivery.__table__).values(next_attempt_at=utcnow() - SECOND))
            conn.execute(update(Message.__table__).values(next_attempt_at=utcnow() - SECOND))
    assert [a.outcome for a in attempts(db, d.id)] == [DEFERRED, DEFERRED]


def test_a_deferral_counts_from_the_attempts_the_database_holds(db, world, env, alias_domain):
    settings = make_settings(**{**env, "RETRY_SCHEDULE": "1m,5m"})
    message_id = world.seed([world.alias(alias_domain, "hello", "bob@dest.test")])
    snap = claimed(db, message_id)
    with db.engine.begin() as conn:  # an attempt recorded since the pass loaded the delivery
        conn.execute(update(Delivery.__table__).values(state=DEFERRED, attempts=1))
    start = utcnow()

    with statements(db.engine) as seen:
        settle(db.engine, snap, tried(snap, LATER), set(), owner=OWNER, settings=settings)

    assert "SELECT deliveries" in kinds(seen)
    [d] = deliveries(db, message_id)
    assert d.attempts == 2 and within(d.next_attempt_at, start, timedelta(minutes=5))


def test_a_deferral_by_our_own_limits_comes_back_after_its_retry_after(db, world, dsettings, alias_domain, path):
    message_id = world.seed([world.alias(alias_domain, "hello", "bob@dest.test")])
    snap = claimed(db, message_id, path)
    start = utcnow()

    settled = settled_by(db, snap, tried(snap, Reply(None, "4.4.5 connection limit"), retry_after=7), dsettings, path)

    [d] = deliveries(db, message_id)
    assert d.state == DEFERRED and within(d.next_attempt_at, start, timedelta(seconds=7))
    assert settled.next_attempt_at == d.next_attempt_at == message(db, message_id).next_attempt_at


def test_a_bounce_inserts_one_dsn_to_the_sender(db, world, dsettings, alias_domain, path):
    route = world.alias(alias_domain, "hello", "nobody@dest.test")
    message_id = world.seed([route])
    snap, tally = claimed(db, message_id, path), Tally()

    settled = settled_by(db, snap, tried(snap, GONE), dsettings, path, tally)

    assert settled.next_attempt_at is None and settled.failed == 1 and dsn_ids(db) == [settled.dsn_id]
    [d] = deliveries(db, message_id)
    assert (d.state, d.last_code, d.next_attempt_at) == (BOUNCED, 550, None)
    assert message(db, message_id).state == DONE
    dsn = message(db, settled.dsn_id)
    assert (dsn.mail_from, dsn.state, dsn.rcpt_tos) == ("", QUEUED, ["alice@sender.test"])
    assert b"Final-Recipient: rfc822; hello@alias.test" in dsn.raw and b"Status: 5.1.1" in dsn.raw
    [dsn_delivery] = deliveries(db, settled.dsn_id)
    assert (dsn_delivery.kind, dsn_delivery.destination, dsn_delivery.domain_id, dsn_delivery.state) == \
        ("dsn", "alice@sender.test", alias_domain, PENDING)
    assert tally.daily == {alias_domain: Counter(bounced=1)} and tally.aliases[route.alias_id].bounced == 1


def test_past_the_queue_lifetime_a_deferral_bounces(db, world, dsettings, alias_domain, path):
    message_id = world.seed([world.alias(alias_domain, "hello", "bob@dest.test")])
    with db.engine.begin() as conn:  # accepted longer ago than MAX_QUEUE_LIFETIME (1h here)
        conn.execute(update(Message.__table__).values(received_at=utcnow() - timedelta(hours=2)))
    snap = claimed(db, message_id, path)

    settled = settled_by(db, snap, tried(snap, LATER), dsettings, path)

    [d] = deliveries(db, message_id)
    assert (d.state, d.last_code, d.next_attempt_at) == (BOUNCED, 451, None)
    assert d.last_reply == "4.4.7 delivery time expired; last error: 4.3.0 try later"
    assert [a.outcome for a in attempts(db, d.id)] == [BOUNCED]
    assert settled.next_attempt_at is None and dsn_ids(db) == [settled.dsn_id]
    assert b"Status: 4.4.7" in message(db, settled.dsn_id).raw


def test_one_recipient_delivered_and_one_deferred(db, world, dsettings, alias_domain, path):
    route = world.alias(alias_domain, "team", "a@one.test", "b@two.test")
    message_id = world.seed([route])
    snap, tally = claimed(db, message_id, path), Tally()

    settled = settled_by(db, snap, tried(snap, OK, LATER), dsettings, path, tally)

    a, b = deliveries(db, message_id)
    assert (a.state, a.attempts, b.state, b.attempts) == (DELIVERED, 1, DEFERRED, 1)
    m = message(db, message_id)
    assert settled == Settled(b.next_attempt_at) and (m.state, m.next_attempt_at) == (QUEUED, b.next_attempt_at)
    assert tally.daily == {alias_domain: Counter(forwarded=1, direct=1, dkim_signed=1, deferred=1)}
    assert tally.aliases[route.alias_id].forwarded == 1


def test_a_delivery_made_final_meanwhile_is_not_touched(db, world, dsettings, alias_domain, path):
    message_id = world.seed([world.alias(alias_domain, "team", "a@one.test", "b@two.test")])
    snap, tally = claimed(db, message_id, path), Tally()
    with db.engine.begin() as conn:  # a worker whose lease we outlived records what it delivered to a
        conn.execute(update(Delivery.__table__).where(Delivery.id == snap.targets[0].id)
                     .values(state=DELIVERED, attempts=1, last_reply="2.0.0 by the other worker"))

    with statements(db.engine) as seen:
        settled = settle(db.engine, snap, tried(snap, GONE, OK), set(), owner=OWNER, settings=dsettings, tally=tally)

    assert "SELECT deliveries" in kinds(seen)  # the known path found it moved and settled from the database
    a, b = deliveries(db, message_id)
    assert (a.state, a.attempts, a.last_reply, attempts(db, a.id)) == (DELIVERED, 1, "2.0.0 by the other worker", [])
    assert (b.state, b.attempts) == (DELIVERED, 1)
    assert settled == Settled(None) and message(db, message_id).state == DONE and dsn_ids(db) == []
    assert tally.daily == {alias_domain: Counter(forwarded=1, direct=1, dkim_signed=1)}  # b only, counted once


def test_a_lost_lease_records_only_what_was_delivered(db, world, dsettings, alias_domain, path):
    message_id = world.seed([world.alias(alias_domain, "team", "a@one.test", "b@two.test")])
    snap, tally = claimed(db, message_id, path), Tally()
    with db.engine.begin() as conn:  # our lease ran out and another worker took the message
        conn.execute(update(Message.__table__).values(lease_owner="another-worker"))

    with statements(db.engine) as seen:
        settled = settle(db.engine, snap, tried(snap, OK, LATER), set(), owner=OWNER, settings=dsettings, tally=tally)

    assert settled is None and "SELECT deliveries" not in kinds(seen)
    a, b = deliveries(db, message_id)
    assert (a.state, a.attempts, [t.outcome for t in attempts(db, a.id)]) == (DELIVERED, 1, [DELIVERED])
    assert (b.state, b.attempts, attempts(db, b.id)) == (PENDING, 0, [])
    m = message(db, message_id)
    assert (m.state, m.attempts, m.lease_owner) == (QUEUED, 0, "another-worker")
    assert tally.daily == {alias_domain: Counter(forwarded=1, direct=1, dkim_signed=1)}


def test_an_open_delivery_outside_the_pass_is_read_for_the_next_time(db, world, dsettings, alias_domain):
    message_id = world.seed([world.alias(alias_domain, "team", "a@one.test", "b@two.test")])
    later = utcnow().replace(microsecond=0) + timedelta(hours=1)
    with db.engine.begin() as conn:  # b was deferred on an earlier pass and is not due yet
        conn.execute(update(Delivery.__table__).where(Delivery.destination == "b@two.test")
                     .values(state=DEFERRED, attempts=1, next_attempt_at=later))
    snap = claimed(db, message_id)
    assert [t.destination for t in snap.targets] == ["a@one.test"] and not snap.all_open_due

    settled = settled_by(db, snap, tried(snap, OK), dsettings, "read")

    assert settled == Settled(later)
    m = message(db, message_id)
    assert (m.state, m.next_attempt_at, m.lease_owner) == (QUEUED, later, None)
    assert [(d.state, d.attempts) for d in deliveries(db, message_id)] == [(DELIVERED, 1), (DEFERRED, 1)]


def test_final_deliveries_outside_the_pass_need_no_read(db, world, dsettings, alias_domain):
    message_id = world.seed([world.alias(alias_domain, "team", "a@one.test", "b@two.test")])
    with db.engine.begin() as conn:  # b bounced on an earlier pass
        conn.execute(update(Delivery.__table__).where(Delivery.destination == "b@two.test")
                     .values(state=BOUNCED, attempts=1))
    snap = claimed(db, message_id)
    assert snap.all_open_due

    assert settled_by(db, snap, tried(snap, OK), dsettings, "known") == Settled(None)
    assert message(db, message_id).state == DONE


def test_the_tries_a_relay_took_over_from_are_logged_before_it(db, world, dsettings, alias_domain, path):
    message_id = world.seed([world.alias(alias_domain, "hello", "bob@dest.test")])
    snap, tally = claimed(db, message_id, path), Tally()
    [target] = snap.targets
    direct = Attempt(target, LATER, mx_host="mx.dest.test")
    relayed = Attempt(target, OK, tls=True, dkim_signed=True, route="relay:primary", fell_back=(direct,))

    assert settled_by(db, snap, [relayed], dsettings, path, tally) == Settled(None)

    [d] = deliveries(db, message_id)
    assert (d.state, d.attempts, d.route) == (DELIVERED, 1, "relay:primary")
    assert [(a.outcome, a.route, a.code) for a in attempts(db, d.id)] == \
        [(DEFERRED, "mx:mx.dest.test", 451), (DELIVERED, "relay:primary", 250)]
    assert tally.daily == {alias_domain: Counter(forwarded=1, relay=1, dkim_signed=1)}


def test_recording_what_was_delivered_leaves_a_final_delivery_alone(db, world, alias_domain):
    message_id = world.seed([world.alias(alias_domain, "team", "a@one.test", "b@two.test")])
    snap = claimed(db, message_id)
    with db.engine.begin() as conn:
        conn.execute(update(Delivery.__table__).where(Delivery.id == snap.targets[0].id)
                     .values(state=BOUNCED, attempts=1, last_reply="given up"))
    tally = Tally()

    with counted(db.engine, tally) as (conn, counts):
        record_delivered(conn, tried(snap, OK, OK), now=utcnow(), counts=counts)

    a, b = deliveries(db, message_id)
    assert (a.state, a.last_reply, attempts(db, a.id)) == (BOUNCED, "given up", [])
    assert (b.state, len(attempts(db, b.id))) == (DELIVERED, 1)
    assert tally.daily == {alias_domain: Counter(forwarded=1, direct=1, dkim_signed=1)}


# ---- through the job ----

def test_a_batch_of_delivered_messages_costs_three_statements_per_message(ctx, world, internet):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    warm = world.seed([route])
    job.deliver_message(warm)  # the DKIM key and the domain flags are read once a minute, not per message
    n = 6
    ids = [world.seed([route]) for _ in range(n)]
    enqueue_messages(ctx.queue, ids[1:])

    with statements(ctx.db.engine) as seen:
        job.deliver_message(ids[0])

    assert len(sink.messages) == n + 1
    per_batch = ["UPDATE messages", "SELECT deliveries", "INSERT INTO daily_stats", "UPDATE aliases"]
    per_message = ["UPDATE messages", "UPDATE deliveries", "INSERT INTO delivery_attempts"]
    assert kinds(seen) == per_batch[:2] + per_message * n + per_batch[2:]
    assert len(seen) == 4 + 3 * n


def test_a_message_to_two_domains_commits_the_first_and_settles_without_reading(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "team", "a@one.test", "b@two.test")
    internet.mx("one.test", (10, "mx.one.test", "127.0.0.2"))
    internet.mx("two.test", (10, "mx.two.test", "127.0.0.3"))
    one, two = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")
    two.handler.data_replies.append("451 4.3.0 try later")
    message_id = world.seed([route])

    with statements(ctx.db.engine) as seen:
        when = job.run(ctx, message_id)

    delivery_statements = [k for k in kinds(seen) if "deliver" in k or "messages" in k]
    assert delivery_statements == [
        "UPDATE messages", "SELECT deliveries",  # claim and load
        "UPDATE deliveries", "INSERT INTO delivery_attempts",  # a, committed before b's transaction
        "UPDATE messages", "UPDATE deliveries", "INSERT INTO delivery_attempts",  # the settle
    ]
    a, b = deliveries(db, message_id)
    assert (a.state, b.state) == (DELIVERED, DEFERRED) and when == b.next_attempt_at
    assert len(one.messages) == 1 and two.messages == []  # the sink keeps what it accepted


def test_a_bounce_enqueues_its_dsn(ctx, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "nobody@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    internet.sink("127.0.0.2").handler.rcpt_replies["nobody@dest.test"] = "550 5.1.1 no such user"
    message_id = world.seed([route])

    assert job.run(ctx, message_id) is None

    [dsn_id] = dsn_ids(db)
    assert ctx.queue.get_job_ids() == [job_id_for(dsn_id)]
