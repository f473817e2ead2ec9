"""Bounces per destination (smtp/delivery/bounces.py): counted as the settle writes them, a destination over
BOUNCE_DISABLE_THRESHOLD in 24 hours or with three 5.1.1 in a row is suspended, its owner told once through a
real delivery, and mail for it held without being tried."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import func, select, update

from mailferry.held_mail import release_held
from mailferry.links import REENABLE_DESTINATION, DestinationLink, read_token, suspension_stamp
from mailferry.models import BounceEvent, Delivery, Mailbox, Message, Notification, User, utcnow
from mailferry.models.mailbox import BY_LINK
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED
from mailferry.models.notification import DESTINATION_SUSPENDED
from mailferry.queue import job_id_for
from mailferry.system_mail import SystemMessage, queue_system_message
from smtp.delivery import lease
from smtp.delivery.bounces import HELD, record_bounces
from smtp.delivery.job import run
from smtp.delivery.load import snapshots
from smtp.delivery.outcome import Reply
from smtp.delivery.record import Attempt, outcome
from smtp.delivery.settle import settle
from tests.smtp.delivery.helpers import attempts, deliveries
from tests.smtp.delivery.sink import CommandLog

DEAD = "bob@dest.test"
FULL = "552 5.2.2 mailbox full"
UNKNOWN = "550 5.1.1 no such user"


class Dead:
    """hello@alias.test -> bob@dest.test (a Mailbox its owner confirmed), whose MX logs every command; the
    owner's own mailbox owner@example.test on another sink."""

    def __init__(self, ctx, world, internet, db):
        self.ctx, self.world, self.db = ctx, world, db
        self.domain_id = world.domain("alias.test", dkim=False)
        self.route = world.alias(self.domain_id, "hello", DEAD)
        internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
        internet.mx("example.test", (10, "mx.example.test", "127.0.0.3"))
        self.mx = internet.sink("127.0.0.2", handler=CommandLog())
        self.owner_sink = internet.sink("127.0.0.3")
        with db.session() as s:
            owner = s.scalar(select(User).where(User.email == "owner@example.test"))
            mailbox = Mailbox(owner_id=owner.id, address=DEAD, verified_at=utcnow(), verified_by=BY_LINK)
            s.add(mailbox)
            s.flush()
            self.owner_id, self.mailbox_id = owner.id, mailbox.id

    def refuse(self, reply: str | None) -> None:
        if reply is None:
            self.mx.handler.rcpt_replies.pop(DEAD, None)
        else:
            self.mx.handler.rcpt_replies[DEAD] = reply

    def send(self, n: int = 1) -> list[str]:
        """n messages to the alias, each delivered (or not) by its own pass."""
        ids = [self.world.seed([self.route]) for _ in range(n)]
        for message_id in ids:
            run(self.ctx, message_id)
        return ids

    def mailbox(self) -> Mailbox:
        with self.db.session() as s:
            return s.get(Mailbox, self.mailbox_id)

    def notices(self) -> list[Notification]:
        with self.db.session() as s:
            return list(s.scalars(select(Notification).where(Notification.kind == DESTINATION_SUSPENDED)))

    def bounce_events(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(BounceEvent))

    def rcpts(self) -> int:
        return self.mx.handler.commands.count("RCPT")


@pytest.fixture
def dead(ctx, world, internet, db) -> Dead:
    return Dead(ctx, world, internet, db)


def test_thirteen_bounces_in_a_day_suspend_the_destination_and_notify_once(dead, dsettings):
    assert dsettings.BOUNCE_DISABLE_THRESHOLD == 12
    dead.refuse(FULL)
    dead.send(12)
    assert dead.mailbox().suspended_at is None and dead.notices() == []
    assert dead.bounce_events() == 12

    dead.send(3)  # the 13th suspends it; the two after it are held, not tried

    mailbox = dead.mailbox()
    assert mailbox.suspended_at is not None
    assert mailbox.suspended_reason.startswith("13 permanent failures in 24 hours (more than 12)")
    assert dead.rcpts() == 13 and dead.bounce_events() == 13
    [notice] = dead.notices()
    assert (notice.user_id, notice.key) == (dead.owner_id, f"mailbox:{dead.mailbox_id}:"
                                                          f"{suspension_stamp(mailbox.suspended_at)}")
    assert job_id_for(notice.message_id) in dead.ctx.queue.get_job_ids()  # dispatched after the commit


def test_bounces_older_than_a_day_do_not_count(dead):
    long_ago = utcnow() - timedelta(hours=25)
    with dead.db.session() as s:
        s.add_all(BounceEvent(mailbox_id=dead.mailbox_id, at=long_ago, status="5.2.2") for _ in range(20))
    dead.refuse(FULL)

    dead.send(12)
    assert dead.mailbox().suspended_at is None and dead.notices() == []
    dead.send(1)
    assert dead.mailbox().suspended_at is not None and len(dead.notices()) == 1


def test_three_user_unknown_in_a_row_suspend_at_once_and_a_delivery_resets_the_streak(dead):
    dead.refuse(UNKNOWN)
    dead.send(2)
    assert dead.mailbox().unknown_user_streak == 2
    dead.refuse(None)
    dead.send(1)  # delivered: the streak starts over
    assert dead.mailbox().unknown_user_streak == 0
    dead.refuse(UNKNOWN)
    dead.send(2)
    assert (dead.mailbox().unknown_user_streak, dead.mailbox().suspended_at) == (2, None)
    dead.refuse(FULL)
    dead.send(1)  # another failure breaks the streak too
    assert dead.mailbox().unknown_user_streak == 0
    dead.refuse(UNKNOWN)
    dead.send(2)
    assert dead.mailbox().suspended_at is None and dead.notices() == []

    dead.send(1)

    mailbox = dead.mailbox()
    assert mailbox.suspended_at is not None and mailbox.suspended_reason.startswith("3 'user unknown' replies in a row")
    assert len(dead.notices()) == 1


def test_the_notice_reaches_the_owner_through_a_real_delivery_with_a_working_reenable_link(dead, dsettings):
    dead.refuse(UNKNOWN)
    dead.send(3)
    [notice] = dead.notices()

    assert run(dead.ctx, notice.message_id) is None

    [received] = dead.owner_sink.messages
    assert received.rcpt_tos == ("owner@example.test",)
    assert received.mail_from == "postmaster@mx.mailferry.test"  # ours, never the original sender's
    mail = message_from_bytes(received.data, policy=default_policy)
    assert mail["X-Mailferry-Notice"] == DESTINATION_SUSPENDED and mail["Auto-Submitted"] == "auto-generated"
    assert DEAD in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "user unknown" in text and f"{dsettings.public_url}/destinations" in text
    [url] = re.findall(r"https?://\S+/destinations/reenable/\S+", text)
    assert url in html
    token = url.rsplit("/", 1)[1]
    link = read_token(dsettings, REENABLE_DESTINATION, token, dsettings.CONFIRMATION_LINK_MAX_AGE)
    assert link == DestinationLink(dead.mailbox_id, suspension_stamp(dead.mailbox().suspended_at))
    [d] = deliveries(dead.db, notice.message_id)
    assert (d.kind, d.state) == ("system", DELIVERED)


def test_no_notice_when_the_owner_turned_suspension_notices_off(dead):
    with dead.db.session() as s:
        s.get(User, dead.owner_id).notification_prefs = {DESTINATION_SUSPENDED: False}
    dead.refuse(UNKNOWN)
    dead.send(3)
    assert dead.mailbox().suspended_at is not None and dead.notices() == []


def test_a_suspended_destination_is_not_tried_and_the_alias_still_delivers_elsewhere(dead, world, internet, db):
    internet.mx("other.test", (10, "mx.other.test", "127.0.0.4"))
    other = internet.sink("127.0.0.4")
    route = world.alias(dead.domain_id, "team", DEAD, "carol@other.test")
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id == dead.mailbox_id)
                  .values(suspended_at=utcnow(), suspended_reason="test"))
    message_id = world.seed([route])

    when = run(dead.ctx, message_id)

    assert dead.rcpts() == 0 and len(other.messages) == 1
    held, delivered = deliveries(db, message_id)
    assert (held.destination, held.state, held.last_reply) == (DEAD, DEFERRED, HELD.text)
    assert delivered.state == DELIVERED and when == held.next_attempt_at
    assert [(a.outcome, a.route) for a in attempts(db, held.id)] == [(DEFERRED, "")]


def test_held_mail_bounces_when_its_lifetime_is_over_without_counting_as_a_bounce(dead, world, db):
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id == dead.mailbox_id)
                  .values(suspended_at=utcnow(), suspended_reason="test"))
    message_id = world.seed([dead.route])
    with db.session() as s:  # received longer ago than MAX_QUEUE_LIFETIME (1h in these tests)
        s.execute(update(Message).where(Message.id == message_id).values(received_at=utcnow() - timedelta(hours=2)))

    assert run(dead.ctx, message_id) is None

    [d] = deliveries(db, message_id)
    assert d.state == BOUNCED and d.last_reply.startswith("4.4.7 delivery time expired; last error: 4.2.1")
    assert dead.rcpts() == 0 and dead.bounce_events() == 0


def test_what_is_not_the_destinations_fault_is_not_counted(dead, world, db):
    dead.refuse("554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org")
    dead.send(1)
    dead.refuse("451 4.3.0 try later")
    [late] = dead.send(1)  # deferred until the lifetime runs out
    with db.session() as s:
        s.execute(update(Message).where(Message.id == late)
                  .values(received_at=utcnow() - timedelta(hours=2), next_attempt_at=None))
        s.execute(update(Delivery).where(Delivery.message_id == late).values(next_attempt_at=None))
    run(dead.ctx, late)

    assert [d.state for d in deliveries(db, late)] == [BOUNCED]
    assert dead.bounce_events() == 0 and dead.mailbox().unknown_user_streak == 0


def test_our_own_mail_bouncing_is_not_counted(dead, dsettings, db):
    """A notice to the owner's account address bouncing says nothing about the destinations of their aliases."""
    with db.engine.begin() as conn:
        notice = queue_system_message(conn, dsettings, SystemMessage(DEAD, "Hello", "hi", "<p>hi</p>", "test"),
                                      dead.domain_id)
    dead.refuse(UNKNOWN)
    for _ in range(3):
        run(dead.ctx, notice)
        with db.session() as s:  # as if sent three times
            s.execute(update(Delivery).where(Delivery.message_id == notice)
                      .values(state=DEFERRED, next_attempt_at=None))
            s.execute(update(Message).where(Message.id == notice).values(state="queued", next_attempt_at=None))

    assert dead.rcpts() == 3 and dead.bounce_events() == 0 and dead.mailbox().suspended_at is None


def test_a_destination_without_a_mailbox_gets_an_unverified_one_to_count_on(dead, world, db):
    route = world.alias(dead.domain_id, "other", "Nobody@Dest.test")
    dead.mx.handler.rcpt_replies["nobody@dest.test"] = UNKNOWN
    run(dead.ctx, world.seed([route]))

    with db.session() as s:
        mailbox = s.scalar(select(Mailbox).where(Mailbox.address == "nobody@dest.test"))
        events = list(s.scalars(select(BounceEvent).where(BounceEvent.mailbox_id == mailbox.id)))
    assert (mailbox.owner_id, mailbox.verified_at, mailbox.unknown_user_streak) == (dead.owner_id, None, 1)
    assert [(e.status, e.reply) for e in events] == [("5.1.1", UNKNOWN)]


def test_a_settle_run_again_after_its_commit_counts_nothing_twice(dead, dsettings, db):
    message_id = dead.world.seed([dead.route])
    with db.engine.begin() as conn:
        snap = snapshots(conn, lease.claim_many(conn, [message_id], "w1", 60))[message_id]
    tried = [Attempt(t, Reply(550, "5.1.1 no such user"), mx_host="mx.dest.test") for t in snap.targets]

    first = settle(db.engine, snap, tried, set(), owner="w1", settings=dsettings)
    again = settle(db.engine, snap, tried, set(), owner="w1", settings=dsettings)

    assert first is not None and first.dsn_id is not None and again is None
    assert dead.bounce_events() == 1 and dead.mailbox().unknown_user_streak == 1


def test_a_bounce_of_mail_under_way_when_it_was_suspended_is_recorded_but_not_announced_again(dead, dsettings, db):
    under_way = dead.world.seed([dead.route])
    with db.engine.begin() as conn:  # loaded by a worker before the suspension
        snap = snapshots(conn, lease.claim_many(conn, [under_way], "w1", 60))[under_way]
    dead.refuse(UNKNOWN)
    dead.send(3)
    suspended_at = dead.mailbox().suspended_at
    assert suspended_at is not None and len(dead.notices()) == 1

    tried = [Attempt(t, Reply(550, "5.1.1 no such user"), mx_host="mx.dest.test") for t in snap.targets]
    settled = settle(db.engine, snap, tried, set(), owner="w1", settings=dsettings)

    assert settled.notices == () and dead.bounce_events() == 4
    assert dead.mailbox().suspended_at == suspended_at and len(dead.notices()) == 1


def test_held_mail_goes_as_soon_as_the_destination_is_re_enabled(dead, world, db):
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id == dead.mailbox_id)
                  .values(suspended_at=utcnow(), suspended_reason="test"))
    [message_id] = dead.send(1)
    [d] = deliveries(db, message_id)
    assert d.state == DEFERRED and d.next_attempt_at > utcnow()
    assert run(dead.ctx, message_id) is not None and dead.rcpts() == 0  # not due: still waiting

    with db.engine.begin() as conn:  # what re-enabling does, with release_held in its transaction
        conn.execute(update(Mailbox).where(Mailbox.id == dead.mailbox_id).values(suspended_at=None))
        assert release_held(conn, dead.mailbox_id) == [message_id]

    assert run(dead.ctx, message_id) is None
    [d] = deliveries(db, message_id)
    assert d.state == DELIVERED and dead.rcpts() == 1


def test_two_workers_bouncing_at_once_suspend_and_announce_once(dead, dsettings, db):
    """The second settle waits on the Mailbox row the first one updated, then sees its suspension."""
    with db.session() as s:
        s.add_all(BounceEvent(mailbox_id=dead.mailbox_id, at=utcnow(), status="5.2.2") for _ in range(12))
    first, second = (bounced(db, dead.world.seed([dead.route]), dsettings) for _ in range(2))
    results: list[list[str]] = []

    with db.engine.connect() as conn:
        trans = conn.begin()
        assert len(record_bounces(conn, first, message_id="m1", now=utcnow(), settings=dsettings)) == 1
        other = threading.Thread(target=lambda: results.append(_in_transaction(db, second, dsettings)))
        other.start()
        other.join(0.3)
        assert other.is_alive()  # waiting for the first transaction's row lock
        trans.commit()
    other.join(20)

    assert results == [[]] and dead.bounce_events() == 14 and len(dead.notices()) == 1


def bounced(db, message_id: str, settings) -> list:
    with db.engine.begin() as conn:
        snap = snapshots(conn, lease.claim_many(conn, [message_id], "w1", 60))[message_id]
    now = utcnow()
    return [outcome(Attempt(t, Reply(552, "5.2.2 mailbox full"), mx_host="mx.dest.test"), attempts_before=0,
                    now=now, received_at=snap.received_at, settings=settings) for t in snap.targets]


def _in_transaction(db, outcomes: list, settings) -> list[str]:
    with db.engine.begin() as conn:
        return record_bounces(conn, outcomes, message_id="m2", now=utcnow(), settings=settings)
