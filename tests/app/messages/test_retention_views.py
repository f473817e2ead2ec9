"""A message whose content the retention sweep deleted: the page and the JSON say when, a requeue is refused (also
when the sweep empties it while the requeue runs), and nothing answers 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from app.services import message_log
from app.services.errors import INVALID, ServiceError
from mailferry.models import Delivery, Message, User, utcnow
from mailferry.models.message import BOUNCED, DELIVERED, DONE, QUEUED
from mailferry.queue import get_queue, job_id_for
from mailferry.retention import sweep
from tests.app.web_fixtures import seed_message

MID = "MSG0000000000001"


def _bounced_long_ago(db, domain_id: int, days: int = 10) -> None:
    seed_message(db, MID, domain_id, "hi@owned.test", ("a@gmail.test", "b@gmail.test"))
    with db.session() as s:
        message = s.get(Message, MID)
        message.state, message.completed_at = DONE, utcnow() - timedelta(days=days)
        states = iter((DELIVERED, BOUNCED))
        for delivery in message.deliveries:
            delivery.state, delivery.last_code, delivery.last_reply = next(states), 550, "5.1.1 no such user"


def _fail_job(redis_conn, web_settings) -> None:
    queue = get_queue(redis_conn, web_settings.RQ_QUEUE)
    job = Job.create("smtp.delivery.job.deliver_message", args=(MID,), id=job_id_for(MID), connection=redis_conn,
                     origin=queue.name)
    FailedJobRegistry(queue=queue).add(job, ttl=3600, exc_string="Traceback: boom")


@pytest.fixture
def emptied(db, owner_domain, web_settings) -> str:
    _bounced_long_ago(db, owner_domain)
    assert sweep(db, web_settings, pause=0).contents == 1
    with db.session() as s:
        return f"{s.get(Message, MID).content_deleted_at:%Y-%m-%d}"


def test_the_message_page_and_json_say_when_the_content_was_deleted(owner_browser, owner_api, emptied, db,
                                                                    owner_domain):
    page = owner_browser.get(f"/messages/{MID}")
    assert page.status_code == 200
    assert f"content deleted on {emptied}" in page.get_data(as_text=True)
    assert owner_browser.get(f"/domains/{owner_domain}/messages").status_code == 200
    body = owner_api("GET", f"/messages/{MID}", status=200).get_json()["message"]
    assert body["content_deleted_at"].startswith(emptied) and body["completed_at"] is not None
    listed = owner_api("GET", f"/domains/{owner_domain}/messages", status=200).get_json()["messages"]
    assert listed[0]["content_deleted_at"] == body["content_deleted_at"]


def test_a_message_with_its_content_is_not_said_to_be_deleted(owner_browser, owner_api, db, owner_domain):
    _bounced_long_ago(db, owner_domain, days=1)
    assert "content deleted" not in owner_browser.get(f"/messages/{MID}").get_data(as_text=True)
    assert owner_api("GET", f"/messages/{MID}", status=200).get_json()["message"]["content_deleted_at"] is None


def test_requeue_of_a_message_whose_content_is_gone_is_refused(admin_browser, admin_api, emptied, db, redis_conn,
                                                               web_settings):
    _fail_job(redis_conn, web_settings)
    failed = admin_browser.get("/admin/failed").get_data(as_text=True)
    assert 'class="failed" data-message="MSG0000000000001"' in failed and "content deleted" in failed
    page = admin_browser.client.post(f"/admin/failed/{MID}/requeue", data={"csrf_token": admin_browser.csrf("/")},
                                     follow_redirects=True)
    assert page.status_code == 200
    assert f"the content of message {MID} was deleted on {emptied}" in page.get_data(as_text=True)
    error = admin_api("POST", f"/admin/failed/{MID}/requeue", status=400).get_json()["error"]
    assert error["code"] == INVALID and "was deleted on" in error["message"] and error["field"] == "message"
    with db.session() as s:
        message = s.get(Message, MID)
        assert (message.state, message.raw) == (DONE, b"")
        assert sorted(d.state for d in s.query(Delivery).filter_by(message_id=MID)) == [BOUNCED, DELIVERED]
    assert job_id_for(MID) not in get_queue(redis_conn, web_settings.RQ_QUEUE).get_job_ids()


def test_a_requeue_that_read_the_message_before_the_sweep_emptied_it_is_refused(db, admin, owner_domain,
                                                                               web_settings, redis_conn):
    """The race: the admin's requeue read the message (content there), then the sweep emptied it and committed."""
    _bounced_long_ago(db, owner_domain)
    queue = get_queue(redis_conn, web_settings.RQ_QUEUE)
    with pytest.raises(ServiceError) as refused, db.session() as s:
        held = s.get(Message, MID)  # kept in the identity map, as requeue's own read would leave it
        assert sweep(db, web_settings, pause=0).contents == 1
        assert held.content_deleted_at is None
        message_log.requeue(s, queue, MID, s.get(User, admin.id))
    assert refused.value.code == INVALID and "was deleted just now" in refused.value.message
    with db.session() as s:
        message = s.get(Message, MID)
        assert message.state == DONE and message.state != QUEUED and message.raw == b""
        assert sorted(d.state for d in message.deliveries) == [BOUNCED, DELIVERED]
