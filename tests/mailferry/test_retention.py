"""mailferry/retention: contents emptied RETENTION_DAYS after the final state and never before, metadata deleted
after LOG_RETENTION_DAYS, bounded batches, on both databases with a frozen clock (`now` passed in)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from harness.settings import make_settings
from mailferry.db import Database
from mailferry.models import BounceEvent, Delivery, DeliveryAttempt, Mailbox, Message, Notification, User
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE, QUARANTINED, QUEUED
from mailferry.models.notification import DELAY_WARNING, DESTINATION_SUSPENDED, DKIM_ROTATION, DNS_BROKEN
from mailferry.retention import BOUNCE_EVENTS_KEPT, sweep
from mailferry.settings import SettingsError
from mailferry.system_mail import SYSTEM_KIND
from smtp.routes import Route, build_message

NOW = datetime(2026, 12, 3, 12, 0, 0)
SETTINGS = make_settings(RETENTION_DAYS=7, LOG_RETENTION_DAYS=30)
RAW = b"From: a@outside.test\r\nSubject: secret\r\n\r\nthe body\r\n"


def seed(db: Database, message_id: str, *, state: str = DONE, completed: timedelta | None = None,
         received: timedelta = timedelta(days=0), delivery_state: str = DELIVERED, kind: str = "forward") -> str:
    """A message `received` before NOW, final `completed` before NOW (None: not final), with one attempt."""
    message = build_message(message_id, mail_from="a@outside.test", raw=RAW,
                            routes=[Route("hi@owned.test", ("me@dest.test",), kind=kind)], state=state)
    message.received_at = NOW - received
    message.completed_at = NOW - completed if completed is not None else None
    with db.session() as s:
        s.add(message)
        s.flush()
        delivery = message.deliveries[0]
        delivery.state = delivery_state
        s.add(DeliveryAttempt(delivery_id=delivery.id, at=message.received_at, outcome=delivery_state))
    return message_id


def raw_of(db: Database, message_id: str) -> tuple[bytes, object]:
    with db.session() as s:
        message = s.get(Message, message_id)
        return message.raw, message.content_deleted_at


def count(db: Database, model, *where) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_content_goes_retention_days_after_the_final_state_and_never_before(db):
    seed(db, "due", completed=timedelta(days=7, seconds=1))
    seed(db, "bounced", completed=timedelta(days=8), delivery_state=BOUNCED)
    seed(db, "young", completed=timedelta(days=7) - timedelta(seconds=1), received=timedelta(days=20))
    swept = sweep(db, SETTINGS, now=NOW, pause=0)
    assert (swept.contents, swept.messages, swept.finished) == (2, 0, True)
    assert raw_of(db, "due") == (b"", NOW) and raw_of(db, "bounced") == (b"", NOW)
    assert raw_of(db, "young") == (RAW, None)
    # the metadata stays: envelope, deliveries, attempts
    assert count(db, DeliveryAttempt) == 3 and count(db, Delivery) == 3
    with db.session() as s:
        assert s.get(Message, "due").mail_from == "a@outside.test" and s.get(Message, "due").size == len(RAW)
    later = NOW + timedelta(seconds=2)
    assert sweep(db, SETTINGS, now=later, pause=0).contents == 1  # the young one's time has come
    assert raw_of(db, "young") == (b"", later)
    assert raw_of(db, "due") == (b"", NOW)  # emptied once, its date kept


@pytest.mark.parametrize("state, delivery_state", [(QUEUED, DEFERRED), (QUEUED, "pending"), (QUARANTINED, "pending")])
def test_never_the_content_of_a_queued_or_quarantined_message_however_old(db, state, delivery_state):
    seed(db, "waiting", state=state, delivery_state=delivery_state, received=timedelta(days=90))
    # a completed_at left behind (a message requeued by an admin keeps none, but the state is what counts)
    seed(db, "requeued", state=state, delivery_state=delivery_state, received=timedelta(days=90),
         completed=timedelta(days=60))
    swept = sweep(db, SETTINGS, now=NOW, pause=0)
    assert (swept.contents, swept.messages) == (0, 0)
    assert raw_of(db, "waiting") == (RAW, None) and raw_of(db, "requeued") == (RAW, None)
    assert count(db, DeliveryAttempt) == 2


@pytest.mark.parametrize("kind", ["dsn", SYSTEM_KIND])
def test_our_own_bounces_and_system_messages_follow_the_same_rule(db, kind):
    seed(db, "old", completed=timedelta(days=8), kind=kind)
    seed(db, "new", completed=timedelta(days=1), kind=kind)
    seed(db, "pending", state=QUEUED, delivery_state=DEFERRED, received=timedelta(days=8), kind=kind)
    assert sweep(db, SETTINGS, now=NOW, pause=0).contents == 1
    assert raw_of(db, "old")[0] == b"" and raw_of(db, "new")[0] == RAW and raw_of(db, "pending")[0] == RAW


def test_metadata_and_attempts_go_log_retention_days_after_the_final_state(db):
    seed(db, "ancient", completed=timedelta(days=30, seconds=1), received=timedelta(days=31))
    seed(db, "kept", completed=timedelta(days=30) - timedelta(seconds=1), received=timedelta(days=31))
    seed(db, "deferred", state=QUEUED, delivery_state=DEFERRED, received=timedelta(days=90))
    swept = sweep(db, SETTINGS, now=NOW, pause=0)
    assert (swept.messages, swept.contents) == (1, 1)
    with db.session() as s:
        assert sorted(s.scalars(select(Message.id))) == ["deferred", "kept"]
        assert sorted(s.scalars(select(Delivery.message_id))) == ["deferred", "kept"]
    assert count(db, DeliveryAttempt) == 2  # the ancient one's attempt went with it (ON DELETE CASCADE)
    assert raw_of(db, "kept") == (b"", NOW)


def test_more_rows_than_one_batch_are_all_handled_and_no_transaction_touches_more_than_a_batch(db):
    for n in range(7):
        seed(db, f"content{n}", completed=timedelta(days=10, minutes=n))
    for n in range(5):
        seed(db, f"gone{n}", completed=timedelta(days=40, minutes=n))
    touched: list[int] = []
    pending = [0]

    @event.listens_for(db.engine, "after_cursor_execute")
    def _count(conn, cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("UPDATE MESSAGES", "DELETE FROM MESSAGES")):
            pending[0] += cursor.rowcount

    @event.listens_for(db.engine, "commit")
    def _commit(conn) -> None:
        touched.append(pending[0])
        pending[0] = 0

    swept = sweep(db, SETTINGS, now=NOW, batch=3, pause=0)
    assert (swept.messages, swept.contents, swept.finished) == (5, 7, True)
    assert max(touched) == 3 and sum(touched) == 12
    assert swept.batches >= 2 + 3  # 5 deletions and 7 emptyings in batches of 3
    assert count(db, Message) == 7 and count(db, Message, Message.content_deleted_at.is_(None)) == 0


def test_a_spent_time_budget_stops_and_the_next_run_goes_on(db):
    for n in range(4):
        seed(db, f"m{n}", completed=timedelta(days=10, minutes=n))
    stopped = sweep(db, SETTINGS, now=NOW, batch=2, budget=0, pause=0)
    assert (stopped.finished, stopped.contents) == (False, 0)
    done = sweep(db, SETTINGS, now=NOW, batch=2, pause=0)
    assert (done.finished, done.contents) == (True, 4)


def _requeue_after_the_select(db: Database, message_id: str, select_of: str):
    """Flip the message back to queued from another connection right after the sweep's SELECT that starts with
    `select_of` (its batch is picked, not yet written): the race with an admin's requeue."""
    other = Database(db.url)
    fired = []

    @event.listens_for(db.engine, "after_cursor_execute")
    def _race(conn, cursor, statement, *_args) -> None:
        if not fired and " ".join(statement.split()).upper().startswith(select_of):
            fired.append(statement)
            with other.engine.begin() as c:
                c.execute(Message.__table__.update().where(Message.id == message_id)
                          .values(state=QUEUED, completed_at=None))
    return other, fired


@pytest.mark.parametrize("completed, select_of", [
    (timedelta(days=10), "SELECT MESSAGES.COMPLETED_AT, MESSAGES.ID FROM MESSAGES"),  # emptying its content
    (timedelta(days=40), "SELECT MESSAGES.ID FROM MESSAGES"),  # deleting it
])
def test_a_message_requeued_between_the_select_and_the_write_is_left_whole(db, completed, select_of):
    seed(db, "racing", completed=completed, delivery_state=BOUNCED)
    other, fired = _requeue_after_the_select(db, "racing", select_of)
    try:
        swept = sweep(db, SETTINGS, now=NOW, pause=0)
    finally:
        other.dispose()
    assert fired and (swept.contents, swept.messages) == (0, 0)
    assert raw_of(db, "racing") == (RAW, None) and count(db, DeliveryAttempt) == 1


def _user_and_mailbox(db: Database) -> tuple[int, int]:
    with db.session() as s:
        user = User(email="owner@people.test", password_hash="x")
        s.add(user)
        s.flush()
        mailbox = Mailbox(owner_id=user.id, address="me@dest.test")
        s.add(mailbox)
        s.flush()
        return user.id, mailbox.id


def test_old_bounce_events_and_notifications_go_dedupe_keys_of_lasting_events_stay(db):
    user_id, mailbox_id = _user_and_mailbox(db)
    with db.session() as s:
        s.add_all([BounceEvent(mailbox_id=mailbox_id, at=NOW - BOUNCE_EVENTS_KEPT - timedelta(seconds=1)),
                   BounceEvent(mailbox_id=mailbox_id, at=NOW - timedelta(hours=25))])  # still within the margin
        old = NOW - timedelta(days=31)
        s.add_all([Notification(user_id=user_id, kind=DESTINATION_SUSPENDED, key="old", created_at=old),
                   Notification(user_id=user_id, kind=DELAY_WARNING, key="old", created_at=old),
                   Notification(user_id=user_id, kind=DNS_BROKEN, key="still broken", created_at=old),
                   Notification(user_id=user_id, kind=DKIM_ROTATION, key="key 1", created_at=old),
                   Notification(user_id=user_id, kind=DESTINATION_SUSPENDED, key="new",
                                created_at=NOW - timedelta(days=29))])
    swept = sweep(db, SETTINGS, now=NOW, pause=0)
    assert (swept.bounce_events, swept.notifications) == (1, 2)
    with db.session() as s:
        assert [b.at for b in s.scalars(select(BounceEvent))] == [NOW - timedelta(hours=25)]
        assert sorted((n.kind, n.key) for n in s.scalars(select(Notification))) == [
            (DESTINATION_SUSPENDED, "new"), (DKIM_ROTATION, "key 1"), (DNS_BROKEN, "still broken")]


def test_delay_warning_keys_outlive_a_short_log_retention_while_mail_can_still_be_deferred(db):
    user_id, _ = _user_and_mailbox(db)
    with db.session() as s:
        s.add(Notification(user_id=user_id, kind=DELAY_WARNING, key="delivery 1", created_at=NOW - timedelta(days=3)))
    short = make_settings(RETENTION_DAYS=0, LOG_RETENTION_DAYS=1, MAX_QUEUE_LIFETIME="5d")
    assert sweep(db, short, now=NOW, pause=0).notifications == 0
    assert sweep(db, short, now=NOW + timedelta(days=3, seconds=1), pause=0).notifications == 1  # 5 d + 1 d


def test_zero_retention_days_empties_at_the_next_run_after_the_final_state(db):
    seed(db, "just done", completed=timedelta(seconds=1))
    seed(db, "deferred", state=QUEUED, delivery_state=DEFERRED, received=timedelta(days=3))
    swept = sweep(db, make_settings(RETENTION_DAYS=0, LOG_RETENTION_DAYS=1), now=NOW, pause=0)
    assert swept.contents == 1 and raw_of(db, "deferred") == (RAW, None)


def test_one_summary_line_with_the_counts(db, caplog):
    seed(db, "due", completed=timedelta(days=8))
    with caplog.at_level(logging.INFO, logger="mailferry.retention"):
        sweep(db, SETTINGS, now=NOW, pause=0)
    lines = [r for r in caplog.records if r.name == "mailferry.retention"]
    assert len(lines) == 1 and lines[0].getMessage() == "retention sweep"
    assert (lines[0].contents, lines[0].messages, lines[0].finished) == (1, 0, True)


def test_log_retention_shorter_than_retention_is_refused():
    with pytest.raises(SettingsError) as refused:
        make_settings(RETENTION_DAYS=10, LOG_RETENTION_DAYS=9)
    assert refused.value.name == "LOG_RETENTION_DAYS"
    assert make_settings(RETENTION_DAYS=10, LOG_RETENTION_DAYS=10).LOG_RETENTION_DAYS == 10
