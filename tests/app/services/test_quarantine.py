"""app/services/quarantine: list, release (a worker-claimable queued message, enqueued in Redis), delete, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job

from app.services import quarantine
from app.services.domains import add_domain
from app.services.errors import ServiceError
from app.services.message_log import dispatch_now
from mailferry.models import Delivery, Domain, Message, utcnow
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.queue import get_queue, job_id_for
from smtp.delivery import lease
from tests.app.web_fixtures import seed_message, seed_quarantined


@pytest.fixture
def domain(db, owner):
    with db.session() as s:
        return add_domain(s, "owned.test", owner).id


def _domain(s, domain_id):
    return s.get(Domain, domain_id)


def test_list_shows_only_the_domains_quarantined_messages(db, domain, owner, other_owner):
    seed_quarantined(db, "held1", domain)
    seed_message(db, "queued1", domain, "hello@owned.test", ("me@dest.test",))
    with db.session() as s:
        other = add_domain(s, "other.test", other_owner).id
    seed_quarantined(db, "held-other", other, recipient="x@other.test")
    with db.session() as s:
        rows = quarantine.list_quarantine(s, _domain(s, domain), owner)
        assert [m.id for m in rows] == ["held1"]
        assert quarantine.count_quarantine(s, _domain(s, domain)) == 1
        row = rows[0].to_dict()
    assert row["from"] == "sender@outside.test" and row["subject"] == "Cheap watches"
    assert row["spam_score"] == 9.5 and row["filter_reason"].startswith("rspamd") and row["size"] > 0
    assert row["mail_from"] == "sender@outside.test"


def test_release_makes_a_claimable_queued_message_and_enqueues_it(db, domain, redis_conn):
    seed_quarantined(db, "held1", domain)
    with db.session() as s:
        assert lease.claim_many(s, ["held1"], "worker-1", 60) == []  # held: no worker takes it
    with db.session() as s:
        quarantine.release(s, quarantine.get_held(s, "held1"))
    queue = get_queue(redis_conn, "mailferry")
    assert dispatch_now(queue, "held1")
    job = Job.fetch(job_id_for("held1"), connection=redis_conn)
    assert job.args == ("held1",) and job.get_status() == "queued" and queue.count == 1
    with db.session() as s:
        message = s.get(Message, "held1")
        assert message.state == QUEUED and message.dsn_block == "quarantined"  # still no DSN on a later bounce
        assert [row.id for row in lease.claim_many(s, ["held1"], "worker-1", 60)] == ["held1"]


def test_only_quarantined_messages_can_be_released_or_deleted(db, domain):
    seed_message(db, "queued1", domain, "hello@owned.test", ("me@dest.test",))
    with db.session() as s:
        with pytest.raises(ServiceError) as caught:
            quarantine.get_held(s, "queued1")
        assert caught.value.code == "invalid"


def test_owners_cannot_see_or_release_another_owners_quarantine(db, domain, other_owner):
    seed_quarantined(db, "held1", domain)
    with db.session() as s:
        with pytest.raises(ServiceError) as caught:
            quarantine.get_held(s, "held1", other_owner)
        assert caught.value.code == "not_found"
        with pytest.raises(ServiceError):
            quarantine.list_quarantine(s, _domain(s, domain), other_owner)
        with pytest.raises(ServiceError):  # my domain, someone else's message id
            quarantine.get_held(s, "held1", domain_id=domain + 1000)
    with db.session() as s:
        assert s.get(Message, "held1").state == QUARANTINED


def test_delete_removes_the_message_and_its_deliveries(db, domain):
    seed_quarantined(db, "held1", domain, destinations=("a@dest.test", "b@dest.test"))
    with db.session() as s:
        quarantine.delete_held(s, quarantine.get_held(s, "held1"))
    with db.session() as s:
        assert s.get(Message, "held1") is None
        assert s.query(Delivery).filter_by(message_id="held1").count() == 0


def test_purge_deletes_only_old_quarantined_messages(db, domain, app_settings):
    settings = app_settings.replace(QUARANTINE_DAYS=14)
    now = utcnow()
    seed_quarantined(db, "old", domain, received_at=now - timedelta(days=15))
    seed_quarantined(db, "recent", domain, received_at=now - timedelta(days=13))
    seed_message(db, "old-queued", domain, "hello@owned.test", ("me@dest.test",))
    with db.session() as s:
        s.get(Message, "old-queued").received_at = now - timedelta(days=30)
    with db.session() as s:
        assert quarantine.purge(s, settings) == 1
    with db.session() as s:
        assert {m.id for m in s.query(Message)} == {"recent", "old-queued"}
        assert s.query(Delivery).filter_by(message_id="old").count() == 0
    with db.session() as s:
        assert quarantine.purge(s, settings.replace(QUARANTINE_DAYS=1)) == 1  # "recent" is 13 days old
