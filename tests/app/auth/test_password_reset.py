"""Password reset by email: the link in the message the account's address receives, once, within the hour, never
revealing which addresses have accounts, limited per client and per account, and never skipping 2FA."""

from __future__ import annotations

import re
import time
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from app.services import password_reset
from app.services.errors import ServiceError
from app.services.users import authenticate
from mailferry.models import User
from tests.app.auth.test_two_factor import enrol
from tests.app.destinations.helpers import system_mail_to
from tests.app.web_fixtures import Browser

OWNER = "owner@people.test"
LINK = re.compile(r"https?://\S+(/login/reset/\S+)")


def _ask(browser: Browser, email: str, client: str = "198.51.100.20", status: int = 200):
    response = browser.post("/login/forgot", {"email": email}, csrf_page="/login/forgot",
                            environ_base={"REMOTE_ADDR": client})
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response


def _links(db, address: str = OWNER) -> list[str]:
    found = []
    for message in system_mail_to(db, address):
        mime = message_from_bytes(message.raw, policy=default_policy)
        assert mime["Subject"] == "Reset your Mailferry password" and mime["Auto-Submitted"] == "auto-generated"
        found.append(LINK.search(mime.get_body(("plain",)).get_content()).group(1))
    return found


def _set(browser: Browser, path: str, password: str, status: int = 302):
    response = browser.post(path, {"new_password": password, "confirm": password}, csrf_page=path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response


def test_the_link_sets_a_new_password_once_and_ends_every_session(web_app, db, owner, browser):
    elsewhere = Browser(web_app).login(OWNER, "owner-password")
    assert 'href="/login/forgot"' in browser.get("/login").get_data(as_text=True)
    page = _ask(browser, OWNER).get_data(as_text=True)
    assert "If an account exists for <b>owner@people.test</b>" in page
    [path] = _links(db)
    form = browser.get(path)
    assert form.status_code == 200 and "For <b>owner@people.test</b>" in form.get_data(as_text=True)

    assert _set(browser, path, "a-brand-new-password").headers["Location"] == "/login"
    with db.session() as s:
        assert authenticate(s, OWNER, "a-brand-new-password") and authenticate(s, OWNER, "owner-password") is None
    assert elsewhere.get("/").status_code == 302  # its session ended with the reset
    again = browser.get(path)
    assert again.status_code == 400 and password_reset.LINK_REFUSED in again.get_data(as_text=True)
    spent = browser.post(path, {"new_password": "yet-another-pw", "confirm": "yet-another-pw"}, csrf_page="/login")
    assert spent.status_code == 400
    with db.session() as s:
        assert authenticate(s, OWNER, "a-brand-new-password")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(web_app, db, owner):
    def answer(email: str) -> str:
        page = _ask(Browser(web_app), email).get_data(as_text=True).replace(email, "ADDRESS")
        return re.sub(r'name="csrf_token"[^>]*>', "", page)

    assert answer("nobody@people.test") == answer(OWNER)
    assert system_mail_to(db, "nobody@people.test") == [] and len(_links(db)) == 1


def test_a_password_changed_another_way_voids_the_links_sent_before(owner_browser, browser, db, owner):
    _ask(browser, OWNER)
    [path] = _links(db)
    response = owner_browser.post("/account", {"pw-old_password": "owner-password", "pw-new_password": "changed-pw-1",
                                               "pw-confirm": "changed-pw-1"}, csrf_page="/account")
    assert response.status_code in (200, 302)
    assert browser.get(path).status_code == 400


def test_an_old_or_forged_link_is_refused(web_settings, db, owner):
    with db.session() as s:
        link = password_reset.make_link(web_settings, s.get(User, owner.id))
    token = link.rsplit("/", 1)[1]
    time.sleep(1.1)
    with db.session() as s:
        with pytest.raises(ServiceError, match="expired or was already used"):
            password_reset.user_for_link(s, web_settings, token, max_age=0)
        forged = password_reset.make_link(web_settings.replace(SECRET_KEY="another-key-" + "x" * 40),
                                          s.get(User, owner.id)).rsplit("/", 1)[1]
        with pytest.raises(ServiceError):
            password_reset.user_for_link(s, web_settings, forged)
        assert password_reset.user_for_link(s, web_settings, token).id == owner.id  # within the hour it works


def test_two_factor_is_still_asked_after_a_reset(browser, db, owner, web_settings):
    enrol(db, web_settings, owner)
    _ask(browser, OWNER)
    [path] = _links(db)
    _set(browser, path, "a-brand-new-password")
    response = browser.post("/login", {"email": OWNER, "password": "a-brand-new-password"})
    assert response.status_code == 302 and response.headers["Location"] == "/login/2fa"
    assert browser.get("/").status_code == 302  # not signed in before the code


def test_requests_are_limited_per_client_and_per_account(web_app, db, owner):
    for n in range(password_reset.PER_CLIENT_PER_HOUR):
        _ask(Browser(web_app), OWNER if n < 5 else f"nobody{n}@people.test", client="198.51.100.30")
    refused = _ask(Browser(web_app), OWNER, client="198.51.100.30", status=429)
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many reset requests from your address" in refused.get_data(as_text=True)
    # five asked for the owner from that client: only PER_ADDRESS_PER_HOUR messages went out
    assert len(_links(db)) == password_reset.PER_ADDRESS_PER_HOUR
    _ask(Browser(web_app), OWNER, client="198.51.100.31")  # another client: answered, still nothing more sent
    assert len(_links(db)) == password_reset.PER_ADDRESS_PER_HOUR
