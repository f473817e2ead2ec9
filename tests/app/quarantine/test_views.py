"""The per-domain Quarantine page: list, release, delete (CSRF-protected POSTs), owner scoping; the message log."""

from __future__ import annotations

from rq.job import Job

from mailferry.models import Message
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.queue import job_id_for
from tests.app.web_fixtures import seed_quarantined


def test_the_domain_page_links_to_the_quarantine_with_a_count(owner_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    seed_quarantined(db, "held2", owner_domain)
    html = owner_browser.get(f"/domains/{owner_domain}").get_data(as_text=True)
    assert f'href="/domains/{owner_domain}/quarantine" id="quarantine-link">Quarantine (2)</a>' in html


def test_the_page_lists_what_was_held_and_why(owner_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    html = owner_browser.get(f"/domains/{owner_domain}/quarantine").get_data(as_text=True)
    assert 'data-message="held1"' in html and "Cheap watches" in html and "sender@outside.test" in html
    assert "9.50" in html and "rspamd: add header" in html
    assert f'action="/domains/{owner_domain}/quarantine/held1/release"' in html
    assert f'action="/domains/{owner_domain}/quarantine/held1/delete"' in html


def test_release_queues_and_enqueues_the_message(owner_browser, owner_domain, db, redis_conn):
    seed_quarantined(db, "held1", owner_domain)
    page = f"/domains/{owner_domain}/quarantine"
    response = owner_browser.post(f"{page}/held1/release", csrf_page=page)
    assert response.status_code == 302 and response.headers["Location"].endswith(page)
    with db.session() as s:
        assert s.get(Message, "held1").state == QUEUED
    assert Job.fetch(job_id_for("held1"), connection=redis_conn).get_status() == "queued"
    assert 'data-message="held1"' not in owner_browser.get(page).get_data(as_text=True)


def test_delete(owner_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    page = f"/domains/{owner_domain}/quarantine"
    assert owner_browser.post(f"{page}/held1/delete", csrf_page=page).status_code == 302
    with db.session() as s:
        assert s.get(Message, "held1") is None


def test_release_without_a_csrf_token_is_refused(owner_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    response = owner_browser.client.post(f"/domains/{owner_domain}/quarantine/held1/release")
    assert response.status_code == 400
    with db.session() as s:
        assert s.get(Message, "held1").state == QUARANTINED


def test_another_owner_can_neither_see_nor_release_nor_delete(other_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    page = f"/domains/{owner_domain}/quarantine"
    assert other_browser.get(page).status_code == 404
    assert other_browser.post(f"{page}/held1/release", csrf_page="/").status_code == 404
    assert other_browser.post(f"{page}/held1/delete", csrf_page="/").status_code == 404
    with db.session() as s:
        assert s.get(Message, "held1").state == QUARANTINED


def test_the_message_log_shows_the_quarantined_state(owner_browser, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    html = owner_browser.get(f"/domains/{owner_domain}/messages").get_data(as_text=True)
    assert "state quarantined" in html and "rspamd: add header" in html
    detail = owner_browser.get("/messages/held1").get_data(as_text=True)
    assert "state quarantined" in detail and "spam score 9.50" in detail
