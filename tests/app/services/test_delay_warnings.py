"""'Still trying' notices (app/services/delay_warnings.py): one per owner and run, once per late delivery, to the
owner and never the sender, none when the owner turned them off; through a real RQ worker once per interval.
The clock is the messages' received_at and the `now` passed in: nothing sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from app.services.delay_warnings import late_query, warn_batch, warn_late
from app.services.domains import add_domain
from app.services.scheduling import (
    DELAY_WARNING_INTERVAL,
    DELAY_WARNING_JOB_ID,
    DELAY_WARNING_LOCK,
    enqueue_delay_warnings_if_due,
)
from mailferry.models import Delivery, Message, Notification, User, utcnow
from mailferry.models.message import DEFERRED, DELIVERED, DONE, QUARANTINED
from mailferry.models.notification import DELAY_WARNING
from mailferry.queue import get_queue, job_id_for
from mailferry.system_mail import SystemMessage, queue_system_message
from tests.app.web_fixtures import seed_message

HOUR = timedelta(hours=1)


@pytest.fixture
def settings(app_settings, redis_url):
    return app_settings.replace(REDIS_URL=redis_url)


@pytest.fixture
def domain_id(db, owner) -> int:
    with db.session() as s:
        return add_domain(s, "owned.test", owner).id


def late(db, message_id: str, domain_id: int, age: timedelta, destination: str = "me@dest.test", **delivery) -> str:
    """A message to hello@owned.test received `age` ago, its delivery updated with `delivery`."""
    seed_message(db, message_id, domain_id, "hello@owned.test", (destination,), subject="Secret plans")
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(received_at=utcnow() - age))
        if delivery:
            s.execute(update(Delivery).where(Delivery.message_id == message_id).values(**delivery))
    return message_id


def notices(db) -> list[tuple[Notification, Message]]:
    with db.session() as s:
        rows = s.execute(select(Notification, Message).join(Message, Message.id == Notification.message_id)
                         .where(Notification.kind == DELAY_WARNING).order_by(Notification.id)
                         .options(selectinload(Message.deliveries))).all()
        return [(n, m) for n, m in rows]


def run_warnings(db, settings, **kwargs) -> list[str]:
    with db.session() as session:
        return warn_late(session, settings, **kwargs)


def warned(db) -> dict[str, bool]:
    with db.session() as s:
        return {d.message_id: d.delay_warned_at is not None for d in s.scalars(select(Delivery))
                if d.kind == "forward"}


def test_a_late_delivery_warns_its_owner_once_and_never_the_sender(db, settings, domain_id, owner, redis_conn):
    assert settings.DELAY_WARNING_TIME == 4 * 3600
    retry_at = utcnow() + HOUR
    late(db, "late", domain_id, 5 * HOUR, state=DEFERRED, last_code=452, last_reply="4.2.2 mailbox over quota",
         next_attempt_at=retry_at, attempts=3)
    late(db, "young", domain_id, 3 * HOUR)
    late(db, "done", domain_id, 5 * HOUR, state=DELIVERED)
    late(db, "held", domain_id, 5 * HOUR)
    with db.session() as s:
        s.get(Message, "done").state = DONE
        s.get(Message, "held").state = QUARANTINED

    sent = run_warnings(db, settings)

    [(notice, mail)] = notices(db)
    assert sent == [mail.id] and notice.user_id == owner.id
    assert [(d.kind, d.destination) for d in mail.deliveries] == [("system", "owner@people.test")]
    assert "sender@outside.test" not in mail.rcpt_tos
    raw = mail.raw.decode()
    assert "X-Mailferry-Notice: delay_warning" in raw
    for shown in ("hello@owned.test", "me@dest.test", "452 4.2.2 mailbox over quota",
                  retry_at.strftime("%Y-%m-%d %H:%M"), f"{settings.public_url}/messages/late"):
        assert shown in raw, shown
    assert "Secret plans" not in raw and "Hi\r\n" not in raw.split("\r\n\r\n", 1)[1]  # never the content
    assert warned(db) == {"late": True, "young": False, "done": False, "held": False}
    assert redis_conn.exists(f"rq:job:{job_id_for(mail.id)}")  # dispatched once committed

    assert run_warnings(db, settings) == []  # not twice
    assert run_warnings(db, settings, now=utcnow() + 2 * HOUR) != []  # "young" is late now
    assert len(notices(db)) == 2


def test_our_own_late_mail_is_not_warned_about(db, settings, owner, domain_id):
    """A notice stuck on its way to the owner must not bring a notice about the notice, run after run."""
    with db.engine.begin() as conn:
        stuck = queue_system_message(conn, settings, SystemMessage(owner.email, "Hello", "hi", "<p>hi</p>", "test"),
                                     domain_id)
    with db.session() as s:
        s.execute(update(Message).where(Message.id == stuck).values(received_at=utcnow() - 5 * HOUR))

    assert run_warnings(db, settings) == [] and notices(db) == []


def test_no_warning_when_the_owner_turned_it_off(db, settings, domain_id, owner):
    with db.session() as s:
        s.get(User, owner.id).notification_prefs = {DELAY_WARNING: False}
    late(db, "late", domain_id, 5 * HOUR)

    assert run_warnings(db, settings) == []

    assert notices(db) == [] and warned(db) == {"late": True}  # and it is not looked at again


def test_one_notice_per_owner_per_run_across_batches(db, settings, domain_id, owner, other_owner):
    with db.session() as s:
        other_domain = add_domain(s, "other.test", other_owner).id
    for i in range(5):
        late(db, f"mine{i}", domain_id, 5 * HOUR)
    late(db, "theirs", other_domain, 5 * HOUR)

    assert len(run_warnings(db, settings, batch=2)) == 2

    by_owner = {n.user_id: m for n, m in notices(db)}
    assert set(by_owner) == {owner.id, other_owner.id}
    assert all(warned(db).values())
    assert "theirs" not in by_owner[owner.id].raw.decode() and "mine0" not in by_owner[other_owner.id].raw.decode()


def test_deliveries_another_run_warned_meanwhile_are_not_announced_again(db, settings, domain_id):
    late(db, "late", domain_id, 5 * HOUR)
    with db.engine.connect() as conn:
        rows = conn.execute(late_query(utcnow(), 500)).all()  # read, then another worker's run goes first
    assert len(run_warnings(db, settings)) == 1

    with db.engine.begin() as conn:
        assert warn_batch(conn, settings, rows, set(), utcnow()) == (set(), [])
    assert len(notices(db)) == 1


def test_the_delay_warning_time_is_the_setting(db, settings, domain_id):
    late(db, "late", domain_id, 2 * HOUR)
    assert run_warnings(db, settings) == []
    assert len(run_warnings(db, settings.replace(DELAY_WARNING_TIME=3600))) == 1


def test_the_job_runs_once_per_interval_through_a_real_rq_worker(db, settings, domain_id, redis_conn, redis_url,
                                                                 monkeypatch):
    late(db, "late", domain_id, 5 * HOUR)
    queue = get_queue(redis_conn, settings.RQ_QUEUE)
    assert enqueue_delay_warnings_if_due(redis_conn, queue, settings)
    assert not enqueue_delay_warnings_if_due(redis_conn, queue, settings)  # another worker, same interval
    assert 0 < redis_conn.ttl(DELAY_WARNING_LOCK) <= DELAY_WARNING_INTERVAL
    for name, value in {"DATABASE_URL": db.url, "REDIS_URL": redis_url, "SECRET_KEY": settings.SECRET_KEY,
                        "RQ_QUEUE": settings.RQ_QUEUE}.items():
        monkeypatch.setenv(name, value)
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    job = Job.fetch(DELAY_WARNING_JOB_ID, connection=redis_conn)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    assert job.return_value() == 1 and len(notices(db)) == 1


def test_the_query_reads_the_queue_through_indexes(db):
    """No full scan of deliveries or messages (PostgreSQL: with sequential scans priced out, so the plan says
    whether an index serves the query at all, whatever the size of the test tables)."""
    query = late_query(utcnow(), 500)
    with db.engine.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "SCAN deliveries" not in plan and "SCAN messages" not in plan, plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            assert "Seq Scan on deliveries" not in plan and "Seq Scan on messages" not in plan, plan

