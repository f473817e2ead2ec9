"""The account page's notice switches (no browser: the Flask test client with CSRF on): a kind turned off there
is not sent, and turned on again it is."""

from __future__ import annotations

import re
from datetime import timedelta

from app.services.quarantine_digest import send_digests
from mailferry.models import utcnow
from mailferry.models.notification import DNS_BROKEN, NOTIFICATION_KINDS, QUARANTINE_DIGEST
from tests.app.services.notices import notices
from tests.app.web_fixtures import seed_quarantined


def checked(page: str) -> dict[str, bool]:
    boxes = re.findall(r'<input type="checkbox" name="(\w+)" id="notify-\w+"( checked)?>', page)
    return {name: bool(on) for name, on in boxes}


def test_the_account_page_shows_a_switch_per_kind_and_saves_them(owner_browser):
    page = owner_browser.get("/account").get_data(as_text=True)
    assert checked(page) == dict.fromkeys(NOTIFICATION_KINDS, True)
    assert "Quarantine digest" in page and "a DNS timeout is not a break" in page
    wanted = [k for k in NOTIFICATION_KINDS if k != QUARANTINE_DIGEST]
    response = owner_browser.post("/account/notifications", dict.fromkeys(wanted, "on"), csrf_page="/account")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account#notifications")
    page = owner_browser.get("/account").get_data(as_text=True)
    assert checked(page) == {**dict.fromkeys(NOTIFICATION_KINDS, True), QUARANTINE_DIGEST: False}
    assert "Notification settings saved." in page


def test_a_digest_turned_off_on_the_account_page_is_not_sent(owner_browser, db, web_settings, owner_domain):
    now = utcnow()
    seed_quarantined(db, "held", owner_domain, received_at=now - timedelta(hours=1))
    owner_browser.post("/account/notifications", {DNS_BROKEN: "on"}, csrf_page="/account")
    assert send_digests(db, web_settings, now) == 0
    owner_browser.post("/account/notifications", {QUARANTINE_DIGEST: "on"}, csrf_page="/account")
    assert send_digests(db, web_settings, now) == 1
    assert len(notices(db, QUARANTINE_DIGEST)) == 1


def test_the_switches_need_a_session_and_the_csrf_token(browser, owner_browser):
    anonymous = browser.post("/account/notifications", {DNS_BROKEN: "on"})
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    refused = owner_browser.client.post("/account/notifications", data={DNS_BROKEN: "on"})
    assert refused.status_code == 400
    assert checked(owner_browser.get("/account").get_data(as_text=True)) == dict.fromkeys(NOTIFICATION_KINDS, True)
