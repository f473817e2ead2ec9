import logging
import re

import pytest

from app.services.users import authenticate
from mailferry.models import User
from tests.app.web_fixtures import Browser, make_web_app


def test_pages_need_a_login(browser):
    for url in ("/", "/account", "/stats", "/domains/1", "/domains/1/aliases", "/messages/X", "/admin/failed"):
        response = browser.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_signup_creates_an_owner_and_signs_in(browser, db):
    response = browser.post("/signup", {"email": "New@People.test", "password": "long-enough-pw",
                                        "confirm": "long-enough-pw"}, csrf_page="/signup")
    assert response.status_code == 302
    page = browser.get("/").get_data(as_text=True)
    assert "new@people.test" in page and "Add a domain" in page
    with db.session() as s:
        user = authenticate(s, "new@people.test", "long-enough-pw")
        assert user.role == "owner" and user.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize("data, field, message", [
    ({"email": "a@people.test", "password": "short", "confirm": "short"}, "password",
     "the password needs at least 8 characters"),  # the app's own words, as the API and CLI say it
    ({"email": "a@people.test", "password": "long-enough-1", "confirm": "long-enough-2"}, "confirm", "passwords differ"),
    ({"email": "not-an-address", "password": "long-enough-1", "confirm": "long-enough-1"}, "email", ""),
    ({"email": "owner@people.test", "password": "long-enough-1", "confirm": "long-enough-1"}, "email", "already exists"),
])
def test_signup_errors_are_shown_next_to_the_field(browser, owner, data, field, message):
    response = browser.post("/signup", data, csrf_page="/signup")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="{field}-error"' in html
    assert message in html.split(f'id="{field}-error"')[1][:200]
    tag = re.search(rf'<input[^>]*id="{field}"[^>]*>', html).group(0)  # screen readers are told too
    described = re.search(r'aria-describedby="([^"]+)"', tag).group(1).split()
    assert 'aria-invalid="true"' in tag and f"{field}-error" in described


def test_signup_can_be_switched_off(web_settings):
    app = make_web_app(web_settings.replace(SIGNUP_ENABLED=False))
    browser = Browser(app)
    assert browser.get("/signup").status_code == 404
    assert "Sign up" not in browser.get("/login").get_data(as_text=True)


def test_forms_refuse_a_post_without_the_csrf_token(browser, owner):
    response = browser.client.post("/login", data={"email": "owner@people.test", "password": "owner-password"})
    assert response.status_code == 400 and "Reload the page" in response.get_data(as_text=True)
    assert "_user_id" not in _session(browser)


def _session(browser):
    with browser.client.session_transaction() as session:
        return dict(session)


def test_login_wrong_password_and_right_password(browser, owner):
    response = browser.post("/login", {"email": "owner@people.test", "password": "wrong-password"})
    assert response.status_code == 200 and "Wrong email or password" in response.get_data(as_text=True)
    response = browser.post("/login", {"email": "OWNER@people.test", "password": "owner-password"})
    assert response.status_code == 302 and response.headers["Location"] == "/"


# Known open-redirect payloads (as sent in the query string): browsers strip TAB/CR/LF and read "\\" as "/".
OPEN_REDIRECTS = ["//evil.test/x", "https://evil.test/", "/\\evil.test", "\\\\evil.test", "/%09/evil.test/path",
                  "/%0a/evil.test", "/%0d/evil.test", "/%0d%0a/evil.test", "%09//evil.test", "%20//evil.test",
                  "/%2F/evil.test", "%2F%2Fevil.test", "/%5Cevil.test", "///evil.test", "http:evil.test",
                  "http:/evil.test", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
                  "/%00/evil.test", "/%7F/evil.test", "/%E3%80%80/evil.test", "%E2%81%84%E2%81%84evil.test",
                  "evil.test", "https:%2F%2Fevil.test", "//%09evil.test", "/%09/%09/evil.test"]


@pytest.mark.parametrize("target, expected", [("/stats", "/stats"), ("/domains/1/messages?q=a%40b", "/domains/1/messages?q=a@b"),
                                              *((target, "/") for target in OPEN_REDIRECTS)])
def test_login_redirects_only_to_local_pages(browser, owner, target, expected):
    response = browser.client.post(f"/login?next={target}", data={
        "email": "owner@people.test", "password": "owner-password", "csrf_token": browser.csrf()})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_session_cookie_flags(web_settings, owner):
    app = make_web_app(web_settings.replace(SESSION_COOKIE_SECURE=True))
    browser = Browser(app)
    token = browser.csrf()
    response = browser.client.post("/login", data={"email": "owner@people.test", "password": "owner-password",
                                                   "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_logout_ends_the_session(owner_browser):
    assert owner_browser.post("/logout", csrf_page="/").status_code == 302
    assert owner_browser.get("/").status_code == 302


def _replay(app, cookie: str):
    """A new client that presents a captured session cookie, as a thief would."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def test_a_session_cookie_captured_before_logout_no_longer_signs_in(web_app, owner_browser):
    captured = owner_browser.client.get_cookie("session").value
    assert _replay(web_app, captured).get("/").status_code == 200  # the copy works while the session lives
    assert owner_browser.post("/logout", csrf_page="/").status_code == 302
    response = _replay(web_app, captured).get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert Browser(web_app).login("owner@people.test", "owner-password").get("/").status_code == 200


def test_a_session_cookie_captured_before_a_password_change_no_longer_signs_in(web_app, owner_browser):
    captured = owner_browser.client.get_cookie("session").value
    owner_browser.post("/account", {"pw-old_password": "owner-password", "pw-new_password": "brand-new-pw",
                                    "pw-confirm": "brand-new-pw"}, csrf_page="/account")
    assert _replay(web_app, captured).get("/").status_code == 302


def test_login_starts_a_new_session_no_fixation(web_app, browser, owner):
    """A cookie planted before login (by an attacker who knows its value) is not the signed-in session."""
    token = browser.csrf()
    with browser.client.session_transaction() as planted:
        planted["planted"] = "by-attacker"
    before = browser.client.get_cookie("session").value
    response = browser.client.post("/login", data={"email": "owner@people.test", "password": "owner-password",
                                                   "csrf_token": token})
    assert response.status_code == 302
    after = browser.client.get_cookie("session").value
    assert after != before and "planted" not in _session(browser) and "_user_id" in _session(browser)
    assert _replay(web_app, before).get("/").status_code == 302


def test_password_change(web_app, owner_browser, db):
    second = Browser(web_app).login("owner@people.test", "owner-password")
    response = owner_browser.post("/account", {"pw-old_password": "nope-nope", "pw-new_password": "brand-new-pw",
                                               "pw-confirm": "brand-new-pw"}, csrf_page="/account")
    html = response.get_data(as_text=True)
    assert 'id="pw-old_password-error"' in html and "current password is wrong" in html
    response = owner_browser.post("/account", {"pw-old_password": "owner-password", "pw-new_password": "brand-new-pw",
                                               "pw-confirm": "brand-new-pw"}, csrf_page="/account")
    assert response.status_code == 302
    assert owner_browser.get("/").status_code == 200  # this session carries on
    assert second.get("/").status_code == 302  # every other session ended with the old password
    with db.session() as s:
        assert authenticate(s, "owner@people.test", "owner-password") is None
        assert authenticate(s, "owner@people.test", "brand-new-pw") is not None


def _login_from(browser, address: str, password: str):
    return browser.client.post("/login", data={"email": "owner@people.test", "password": password,
                                               "csrf_token": browser.csrf()}, environ_base={"REMOTE_ADDR": address})


def test_an_attacker_is_throttled_and_told_how_long_while_the_owner_logs_in(web_settings, owner):
    app = make_web_app(web_settings.replace(LOGIN_RATE_LIMIT=3))
    attacker, user = Browser(app), Browser(app)
    for _ in range(3):
        assert _login_from(attacker, "198.51.100.66", "wrong-pw").status_code == 200
    response = _login_from(attacker, "198.51.100.66", "owner-password")
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 900
    assert "Too many failed logins for this account from your address. Try again in 15 minutes." in \
        response.get_data(as_text=True)
    assert _login_from(user, "203.0.113.10", "owner-password").status_code == 302  # the owner is not locked out


def test_a_failing_address_does_not_lock_another_account(web_settings, owner, other_owner):
    app = make_web_app(web_settings.replace(LOGIN_RATE_LIMIT=2))
    browser = Browser(app)
    for _ in range(2):
        assert _login_from(browser, "198.51.100.66", "wrong-pw").status_code == 200
    response = browser.client.post("/login", data={"email": "other@people.test", "password": "other-password",
                                                   "csrf_token": browser.csrf()},
                                   environ_base={"REMOTE_ADDR": "198.51.100.66"})
    assert response.status_code == 302


def test_login_rate_limit_fails_open_when_redis_is_down(web_settings, owner, redis_server, caplog):
    app = make_web_app(web_settings.replace(LOGIN_RATE_LIMIT=1))
    browser = Browser(app)
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mailferry.login_limit"):
            browser.post("/login", {"email": "owner@people.test", "password": "wrong-pw"})
            response = browser.post("/login", {"email": "owner@people.test", "password": "owner-password"})
    finally:
        redis_server.start()
    assert response.status_code == 302
    assert any("login rate limit unavailable" in r.getMessage() for r in caplog.records)


def test_api_tokens_are_shown_once_and_can_be_revoked(owner_browser, web_app):
    response = owner_browser.post("/account/tokens", {"token-name": "laptop"}, csrf_page="/account")
    assert response.status_code == 302 and response.headers["Location"] == "/account"  # a reload repeats nothing
    html = owner_browser.get("/account").get_data(as_text=True)
    secret = html.split('id="new-token"')[1].split('data-copy="')[1].split('"')[0]
    assert secret.startswith("mf_")
    page = owner_browser.get("/account").get_data(as_text=True)
    assert "laptop" in page and secret not in page
    api = web_app.test_client()
    assert api.get("/api/v1/domains", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    token_id = page.split("/account/tokens/")[1].split("/revoke")[0]
    assert owner_browser.post(f"/account/tokens/{token_id}/revoke", csrf_page="/account").status_code == 302
    assert api.get("/api/v1/domains", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_token_name_error_next_to_the_field(owner_browser):
    response = owner_browser.post("/account/tokens", {"token-name": ""}, csrf_page="/account")
    assert response.status_code == 400 and 'id="token-name-error"' in response.get_data(as_text=True)


def test_token_name_with_a_control_character_is_refused_next_to_the_field(owner_browser, db, owner):
    from app.services.tokens import list_tokens
    response = owner_browser.post("/account/tokens", {"token-name": "ci\r\nX: y"}, csrf_page="/account")
    assert response.status_code == 400
    assert "control characters" in response.get_data(as_text=True).split('id="token-name-error"')[1][:200]
    with db.session() as s:
        assert list_tokens(s, s.get(User, owner.id)) == []


def test_signup_email_with_a_line_feed_is_refused_next_to_the_field(browser, db):
    response = browser.post("/signup", {"email": "new\nuser@people.test", "password": "long-enough-pw",
                                        "confirm": "long-enough-pw"}, csrf_page="/signup")
    assert "control characters" in response.get_data(as_text=True).split('id="email-error"')[1][:200]
    with db.session() as s:
        assert s.query(User).count() == 0


def test_another_owner_cannot_revoke_my_token(owner_browser, other_browser, db, owner):
    from app.services.tokens import create_token, list_tokens
    with db.session() as s:
        token, _ = create_token(s, s.get(User, owner.id), "mine")
    assert other_browser.post(f"/account/tokens/{token.id}/revoke", csrf_page="/account").status_code == 404
    with db.session() as s:
        assert len(list_tokens(s, s.get(User, owner.id))) == 1
