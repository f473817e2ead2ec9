"""The Destinations page, the alias pages' "waiting for confirmation", and the public link pages: GET shows
what a button would do and changes nothing (mail scanners fetch links), POST with the CSRF token does it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from app.services.aliases import add_alias, update_alias
from mailferry.links import REENABLE_DESTINATION, DestinationLink, link_url, suspension_stamp
from mailferry.models import Alias, Mailbox, utcnow
from tests.app.destinations.helpers import mailbox, system_mail_to, token_in

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def alias_to_bob(owner_browser, owner_domain, db):
    response = owner_browser.post(f"/domains/{owner_domain}/aliases",
                                  {"address": "hello", "destinations": "bob@dest.test\nowner@people.test",
                                   "enabled": "y"}, csrf_page="/")
    assert response.status_code == 302
    return owner_domain


def _press(browser, url: str):
    """Open a link page without an account, then press its button (with the page's CSRF token)."""
    page = browser.get(url)
    token = CSRF.search(page.get_data(as_text=True))
    assert token, page.get_data(as_text=True)
    return browser.client.post(url, data={"csrf_token": token.group(1)})


def test_the_alias_pages_show_an_unconfirmed_destination_as_such(owner_browser, alias_to_bob, db):
    html = owner_browser.get(f"/domains/{alias_to_bob}/aliases").get_data(as_text=True)
    assert "waiting for confirmation" in html
    alias_id = re.search(r"/aliases/(\d+)/edit", html).group(1)
    edit = owner_browser.get(f"/aliases/{alias_id}/edit").get_data(as_text=True)
    assert 'id="unconfirmed"' in edit and "bob@dest.test (waiting for confirmation)" in edit


def test_the_destinations_page_lists_status_and_resend_is_limited(owner_browser, alias_to_bob, db):
    html = owner_browser.get("/destinations").get_data(as_text=True)
    assert 'data-address="bob@dest.test" data-status="pending"' in html
    assert "waiting for confirmation" in html and "Resend" in html and "Mark verified" not in html
    box = mailbox(db, "bob@dest.test")
    response = owner_browser.post(f"/destinations/{box.id}/resend", csrf_page="/destinations", follow_redirects=True)
    assert "less than 10 minutes ago" in response.get_data(as_text=True)
    assert len(system_mail_to(db, "bob@dest.test")) == 1
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id == box.id).values(confirm_sent_at=utcnow().replace(year=2025)))
    response = owner_browser.post(f"/destinations/{box.id}/resend", csrf_page="/destinations", follow_redirects=True)
    assert "A new confirmation link was sent to bob@dest.test" in response.get_data(as_text=True)
    assert len(system_mail_to(db, "bob@dest.test")) == 2


def test_the_confirm_page_changes_nothing_on_get_and_confirms_once_on_post(browser, alias_to_bob, db):
    url = f"/destinations/confirm/{token_in(system_mail_to(db, 'bob@dest.test')[0].raw)}"
    for _ in range(2):  # a link scanner, then the person
        page = browser.get(url)
        assert page.status_code == 200
        assert "owner@people.test" in page.get_data(as_text=True) and 'id="confirm"' in page.get_data(as_text=True)
    assert not mailbox(db, "bob@dest.test").verified
    done = _press(browser, url)
    assert done.status_code == 200 and 'id="link-done"' in done.get_data(as_text=True)
    assert mailbox(db, "bob@dest.test").verified_by == "link"
    again = browser.get(url)
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)


def test_a_post_without_the_csrf_token_confirms_nothing(browser, alias_to_bob, db):
    url = f"/destinations/confirm/{token_in(system_mail_to(db, 'bob@dest.test')[0].raw)}"
    assert browser.client.post(url).status_code == 400
    assert not mailbox(db, "bob@dest.test").verified


def test_a_tampered_link_gets_a_clear_page(browser, alias_to_bob, db):
    token = token_in(system_mail_to(db, "bob@dest.test")[0].raw)
    page = browser.get(f"/destinations/confirm/{token[:-3]}AAA")
    assert page.status_code == 400 and "not valid" in page.get_data(as_text=True)
    assert 'id="confirm"' not in page.get_data(as_text=True)


def test_an_admin_marks_verified_from_the_page_and_sees_every_owner(admin_browser, alias_to_bob, db):
    html = admin_browser.get("/destinations").get_data(as_text=True)
    assert "owner@people.test" in html and "Mark verified" in html
    box = mailbox(db, "bob@dest.test")
    admin_browser.post(f"/destinations/{box.id}/verify", csrf_page="/destinations")
    assert mailbox(db, "bob@dest.test").verified_by == "admin"
    html = admin_browser.get(f"/domains/{alias_to_bob}/aliases").get_data(as_text=True)
    assert "bob@dest.test" in html and "(waiting for confirmation)" not in html


def test_an_owner_cannot_mark_verified_nor_see_another_owners_destinations(owner_browser, other_browser,
                                                                            alias_to_bob, db):
    box = mailbox(db, "bob@dest.test")
    owner_browser.post(f"/destinations/{box.id}/verify", csrf_page="/destinations")
    assert not mailbox(db, "bob@dest.test").verified
    assert "bob@dest.test" not in other_browser.get("/destinations").get_data(as_text=True)
    assert other_browser.post(f"/destinations/{box.id}/resend", csrf_page="/destinations").status_code == 404


def test_the_reenable_page_lifts_a_suspension_once(browser, owner_browser, alias_to_bob, db):
    box = mailbox(db, "bob@dest.test")
    suspended_at = utcnow()
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id == box.id).values(
            verified_at=suspended_at, suspended_at=suspended_at, suspended_reason="13 bounces in 24 hours"))
    html = owner_browser.get("/destinations").get_data(as_text=True)
    assert 'data-status="suspended"' in html and "13 bounces in 24 hours" in html and "Re-enable" in html
    url = link_url(browser.app.extensions["mailferry.settings"], REENABLE_DESTINATION,
                   DestinationLink(box.id, suspension_stamp(suspended_at))).split("://", 1)[1].split("/", 1)[1]
    assert mailbox(db, "bob@dest.test").suspended and browser.get(f"/{url}").status_code == 200
    assert mailbox(db, "bob@dest.test").suspended
    assert 'id="link-done"' in _press(browser, f"/{url}").get_data(as_text=True)
    assert not mailbox(db, "bob@dest.test").suspended
    assert browser.get(f"/{url}").status_code == 410


def test_signup_sends_the_account_address_a_confirmation(browser, db):
    response = browser.post("/signup", {"email": "New@People.test", "password": "a-long-password",
                                        "confirm": "a-long-password"}, csrf_page="/signup", follow_redirects=True)
    assert "We sent a confirmation link to new@people.test" in response.get_data(as_text=True)
    [sent] = system_mail_to(db, "new@people.test")
    assert b"X-Mailferry-Notice: signup" in sent.raw
    assert not mailbox(db, "new@people.test", "new@people.test").verified


def test_an_admin_created_account_is_verified(admin_browser, db):
    admin_browser.post("/admin/users", {"email": "made@people.test", "password": "a-long-password", "role": "owner"},
                       csrf_page="/admin/users")
    assert mailbox(db, "made@people.test", "made@people.test").verified_by == "admin"
    assert system_mail_to(db, "made@people.test") == []


def test_removing_a_destination_once_no_alias_names_it(owner_browser, alias_to_bob, db, owner):
    with db.session() as s:
        alias_id = add_alias(s, "spare@owned.test", ["spare@dest.test"]).id
    spare = mailbox(db, "spare@dest.test")
    response = owner_browser.post(f"/destinations/{spare.id}/remove", csrf_page="/destinations",
                                  follow_redirects=True)
    assert "is an alias destination" in response.get_data(as_text=True)
    with db.session() as s:
        update_alias(s, s.get(Alias, alias_id), destinations=["bob@dest.test"])
    assert f"/destinations/{spare.id}/remove" in owner_browser.get("/destinations").get_data(as_text=True)
    response = owner_browser.post(f"/destinations/{spare.id}/remove", csrf_page="/destinations",
                                  follow_redirects=True)
    assert "spare@dest.test removed." in response.get_data(as_text=True)
    assert mailbox(db, "spare@dest.test") is None
    assert f"/destinations/{mailbox(db, 'bob@dest.test').id}/remove" not in response.get_data(as_text=True)
