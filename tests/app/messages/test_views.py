import re

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select

from app.services.domains import add_domain
from mailferry.models import DailyStat, Delivery, DeliveryAttempt, Message, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE
from mailferry.queue import get_queue, job_id_for
from tests.app.web_fixtures import seed_message


def _deliver(db, message_id, destination, state, route="mx:mx.gmail.test", tls=True, code=250, reply="2.0.0 OK"):
    with db.session() as s:
        d = s.query(Delivery).filter_by(message_id=message_id, destination=destination).one()
        d.state, d.route, d.tls, d.last_code, d.last_reply, d.attempts = state, route, tls, code, reply, 1
        s.add(DeliveryAttempt(delivery_id=d.id, route=route, code=code, reply=reply, tls=tls, outcome=state))


def test_log_shows_each_destination_with_its_state(owner_browser, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test", "b@outlook.test"))
    _deliver(db, "MSG0000000000001", "a@gmail.test", DELIVERED)
    _deliver(db, "MSG0000000000001", "b@outlook.test", DEFERRED, route="mx:mx.outlook.test", tls=False, code=451,
             reply="4.7.0 try later")
    html = owner_browser.get(f"/domains/{owner_domain}/messages").get_data(as_text=True)
    rows = re.findall(r'<tr class="message" data-message="MSG0000000000001">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    assert "a@gmail.test" in rows[0] and "delivered" in rows[0] and "via MX mx.gmail.test, TLS" in rows[0]
    assert "b@outlook.test" in rows[1] and "deferred" in rows[1] and "no TLS" in rows[1] and "451 4.7.0 try later" in rows[1]
    assert "sender@outside.test" in html and "Hello" in html and "hi@owned.test" in html
    detail = owner_browser.get("/messages/MSG0000000000001").get_data(as_text=True)
    assert "Retry now" in detail and "Give up" in detail and "4.7.0 try later" in detail


def test_search_by_address(owner_browser, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "sales@owned.test", ("a@gmail.test",), mail_from="bob@x.test")
    seed_message(db, "MSG0000000000002", owner_domain, "info@owned.test", ("c@gmail.test",), mail_from="eve@y.test")
    for query, expected in (("SALES@", "MSG0000000000001"), ("c@gmail", "MSG0000000000002"),
                            ("eve@", "MSG0000000000002")):
        html = owner_browser.get(f"/domains/{owner_domain}/messages?q={query}").get_data(as_text=True)
        found = set(re.findall(r'data-message="(MSG\d+)"', html))
        assert found == {expected}, (query, found)


def test_retry_now_makes_it_due_and_enqueues_the_job(owner_browser, owner_domain, db, redis_conn, web_settings):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    later = utcnow().replace(year=2099)
    with db.session() as s:
        message = s.get(Message, "MSG0000000000001")
        message.next_attempt_at = later
        message.deliveries[0].state, message.deliveries[0].next_attempt_at = DEFERRED, later
    assert owner_browser.post("/messages/MSG0000000000001/retry", csrf_page="/").status_code == 302
    with db.session() as s:
        message = s.get(Message, "MSG0000000000001")
        assert message.next_attempt_at < later and message.deliveries[0].next_attempt_at < later
    queue = get_queue(redis_conn, web_settings.RQ_QUEUE)
    assert job_id_for("MSG0000000000001") in queue.get_job_ids()


def test_give_up_bounces_open_deliveries_and_finishes_the_message(owner_browser, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test", "b@gmail.test"))
    _deliver(db, "MSG0000000000001", "a@gmail.test", DELIVERED)
    _deliver(db, "MSG0000000000001", "b@gmail.test", DEFERRED, code=451, reply="later")
    owner_browser.post("/messages/MSG0000000000001/give-up", csrf_page="/")
    with db.session() as s:
        message = s.get(Message, "MSG0000000000001")
        states = {d.destination: d.state for d in message.deliveries}
        assert states == {"a@gmail.test": DELIVERED, "b@gmail.test": BOUNCED} and message.state == DONE
        # the given-up copy is counted as bounced, for the domain and overall; no DSN was queued
        assert {r.domain_id: r.bounced for r in s.scalars(select(DailyStat))} == {0: 1, owner_domain: 1}
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.kind == "dsn")) == 0
    html = owner_browser.get("/messages/MSG0000000000001").get_data(as_text=True)
    assert "Retry now" not in html
    # nothing left to retry: refused with the reason
    response = owner_browser.post("/messages/MSG0000000000001/retry", csrf_page="/")
    assert response.status_code == 400 and "nothing left to deliver" in response.get_data(as_text=True)


def test_another_owner_gets_404_for_my_messages(other_browser, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    assert other_browser.get("/messages/MSG0000000000001").status_code == 404
    assert other_browser.get(f"/domains/{owner_domain}/messages").status_code == 404
    for action in ("retry", "give-up"):
        assert other_browser.post(f"/messages/MSG0000000000001/{action}", csrf_page="/").status_code == 404
    with db.session() as s:
        assert s.get(Message, "MSG0000000000001").deliveries[0].state == "pending"


def test_a_message_to_two_owners_shows_each_only_their_part(owner_browser, other_browser, owner_domain, other_owner, db):
    with db.session() as s:
        other_domain = add_domain(s, "theirs.test", other_owner).id
    from smtp.routes import Route, build_message
    with db.session() as s:
        s.add(build_message("MSG0000000000003", mail_from="x@y.test", raw=b"Subject: both\r\n\r\nhi\r\n", routes=[
            Route("a@owned.test", ("mine@gmail.test",), domain_id=owner_domain),
            Route("b@theirs.test", ("theirs@gmail.test",), domain_id=other_domain)]))
    mine = owner_browser.get("/messages/MSG0000000000003").get_data(as_text=True)
    theirs = other_browser.get("/messages/MSG0000000000003").get_data(as_text=True)
    assert "mine@gmail.test" in mine and "theirs@gmail.test" not in mine
    assert "theirs@gmail.test" in theirs and "mine@gmail.test" not in theirs
    # each page leads back to the reader's own domain and its log, never the other owner's
    assert f'href="/domains/{owner_domain}/messages"' in mine and "theirs.test" not in mine
    assert f'href="/domains/{other_domain}"' in theirs and "owned.test" not in theirs.split("<h1>")[1].split("<h2>")[0]


def test_admin_failed_queue_and_requeue(admin_browser, owner_browser, owner_domain, db, redis_conn, web_settings):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    queue = get_queue(redis_conn, web_settings.RQ_QUEUE)
    job = Job.create("smtp.delivery.job.deliver_message", args=("MSG0000000000001",),
                     id=job_id_for("MSG0000000000001"), connection=redis_conn, origin=queue.name)
    FailedJobRegistry(queue=queue).add(job, ttl=3600, exc_string="Traceback: boom")
    assert owner_browser.get("/admin/failed").status_code == 404
    assert owner_browser.post("/admin/failed/MSG0000000000001/requeue", csrf_page="/").status_code == 404
    html = admin_browser.get("/admin/failed").get_data(as_text=True)
    assert 'data-message="MSG0000000000001"' in html
    assert admin_browser.post("/admin/failed/MSG0000000000001/requeue", csrf_page="/").status_code == 302
    assert job_id_for("MSG0000000000001") not in FailedJobRegistry(queue=queue).get_job_ids()
    assert job_id_for("MSG0000000000001") in queue.get_job_ids()
    assert "Nothing failed" in admin_browser.get("/admin/failed").get_data(as_text=True)


def test_failed_queue_page_says_when_redis_is_down(admin_browser, redis_server):
    redis_server.stop()
    try:
        html = admin_browser.get("/admin/failed").get_data(as_text=True)
    finally:
        redis_server.start()
    assert "Redis is unreachable" in html


def test_retry_with_redis_down_leaves_it_due_for_the_reconciler(owner_browser, owner_domain, db, redis_server):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    with db.session() as s:
        s.get(Message, "MSG0000000000001").next_attempt_at = utcnow().replace(year=2099)
    token = owner_browser.csrf("/")
    redis_server.stop()
    try:
        response = owner_browser.client.post("/messages/MSG0000000000001/retry", data={"csrf_token": token},
                                             follow_redirects=True)
    finally:
        redis_server.start()
    assert "the worker will pick it up" in response.get_data(as_text=True)
    with db.session() as s:
        assert s.get(Message, "MSG0000000000001").next_attempt_at <= utcnow()


def test_admin_requeues_a_bounced_copy_without_resending_the_delivered_one(admin_browser, owner_browser, owner_domain,
                                                                          db, redis_conn, web_settings):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test", "b@gmail.test"))
    _deliver(db, "MSG0000000000001", "a@gmail.test", DELIVERED)
    _deliver(db, "MSG0000000000001", "b@gmail.test", BOUNCED, code=550, reply="5.1.1 no such user")
    with db.session() as s:
        s.get(Message, "MSG0000000000001").state = DONE
    html = admin_browser.get("/admin/failed").get_data(as_text=True)
    assert 'class="bounce" data-message="MSG0000000000001"' in html and "5.1.1 no such user" in html
    assert admin_browser.post("/admin/failed/MSG0000000000001/requeue", csrf_page="/").status_code == 302
    with db.session() as s:
        message = s.get(Message, "MSG0000000000001")
        assert message.state == "queued" and message.completed_at is None
        assert {d.destination: d.state for d in message.deliveries} == {"a@gmail.test": DELIVERED,
                                                                          "b@gmail.test": "pending"}
    assert job_id_for("MSG0000000000001") in get_queue(redis_conn, web_settings.RQ_QUEUE).get_job_ids()
    assert "No bounces." in admin_browser.get("/admin/failed").get_data(as_text=True)


@pytest.mark.parametrize("page, status, text", [
    ("/domains/{d}/messages?q=a%00b", 400, "the search must not contain line breaks or other control characters"),
    ("/domains/{d}/aliases?q=a%00b", 400, "the search must not contain line breaks or other control characters"),
    ("/messages/a%00b", 404, "no message"),
])
def test_a_nul_in_a_search_or_a_message_id_is_a_clean_refusal(owner_browser, owner_domain, page, status, text):
    """PostgreSQL cannot store or compare a NUL: it raised (500) before the service layer refused it."""
    response = owner_browser.get(page.format(d=owner_domain))
    assert response.status_code == status and text in response.get_data(as_text=True)
