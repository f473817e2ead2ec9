"""Two-factor authentication in the dashboard: the login's second step, the pending state, the failed-login
limit, set-up, recovery codes, switching off, and REQUIRE_ADMIN_2FA."""

import re
import time

import pyotp
import pytest

from app.services import two_factor
from app.services.users import end_sessions
from mailferry.models import User
from tests.app.web_fixtures import Browser, api_for, make_web_app

OWNER = ("owner@people.test", "owner-password")


def code(secret: str, steps: int = 0) -> str:
    """The code of the live clock's step plus `steps` (the server accepts one either side)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def wrong(secret: str) -> str:
    valid = {code(secret, n) for n in range(-2, 3)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in valid)


def enrol(db, web_settings, user) -> tuple[str, list[str]]:
    """2FA on for `user`, enabled with the previous step's code so the current and next ones stay fresh."""
    with db.session() as s:
        row = s.get(User, user.id)
        secret = two_factor.begin_enrolment(s, row, web_settings.SECRET_KEY).secret
        codes = two_factor.enable(s, row, web_settings.SECRET_KEY, code(secret, -1))
    return secret, codes


def password_step(browser: Browser, email: str = OWNER[0], password: str = OWNER[1], next_path: str = "", **kw):
    response = browser.post(f"/login{next_path}", {"email": email, "password": password}, **kw)
    assert response.status_code == 302 and response.headers["Location"] == "/login/2fa", response.status_code
    return response


def code_step(browser: Browser, value: str, **kw):
    return browser.post("/login/2fa", {"code": value}, **kw)


def signed_in(browser: Browser) -> bool:
    return browser.get("/").status_code == 200


@pytest.fixture
def enrolled(db, web_settings, owner):
    return enrol(db, web_settings, owner)


def test_login_with_the_right_code(browser, enrolled):
    secret, _codes = enrolled
    password_step(browser, next_path="?next=/stats")
    response = code_step(browser, code(secret, 1))
    assert response.status_code == 302 and response.headers["Location"] == "/stats"
    assert signed_in(browser)


def test_login_with_a_wrong_code_is_refused(browser, enrolled):
    secret, _codes = enrolled
    password_step(browser)
    response = code_step(browser, wrong(secret))
    assert response.status_code == 400 and "Wrong code" in response.get_data(as_text=True)
    assert not signed_in(browser)
    assert code_step(browser, code(secret, 1)).status_code == 302 and signed_in(browser)  # the pending step stays


def test_a_replayed_code_is_refused(web_app, enrolled):
    secret, _codes = enrolled
    used = code(secret, 0)
    first = Browser(web_app)
    password_step(first)
    assert code_step(first, used).status_code == 302
    thief = Browser(web_app)  # saw the code over the owner's shoulder, knows the password
    password_step(thief)
    assert code_step(thief, used).status_code == 400 and not signed_in(thief)


def test_a_recovery_code_works_once_and_says_how_many_are_left(web_app, enrolled):
    _secret, codes = enrolled
    browser = Browser(web_app)
    password_step(browser)
    response = code_step(browser, codes[0])
    assert response.status_code == 302
    assert "Recovery code used: 9 left" in browser.get("/").get_data(as_text=True)
    again = Browser(web_app)
    password_step(again)
    assert code_step(again, codes[0]).status_code == 400 and not signed_in(again)


def test_the_pending_login_reaches_no_page(web_app, browser, enrolled, owner_domain):
    password_step(browser)
    for url in ("/", "/account", "/stats", f"/domains/{owner_domain}", "/account/2fa", "/admin/users"):
        response = browser.get(url)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url
    assert browser.post("/account/tokens", {"token-name": "x"}, csrf_page="/login/2fa").status_code == 302
    assert browser.get("/api/v1/domains").status_code == 401
    with browser.client.session_transaction() as session:
        assert "_user_id" not in session


def test_the_pending_login_expires(browser, enrolled):
    secret, _codes = enrolled
    password_step(browser)
    with browser.client.session_transaction() as session:
        session["pending_2fa"] = {**session["pending_2fa"], "at": int(time.time()) - 301}
    response = code_step(browser, code(secret, 1))
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(browser)


def test_a_password_change_ends_the_pending_login(browser, db, enrolled, owner):
    secret, _codes = enrolled
    password_step(browser)
    with db.session() as s:
        end_sessions(s, s.get(User, owner.id))  # what a password change or a logout elsewhere does
    response = code_step(browser, code(secret, 1))
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(browser)


def test_wrong_codes_count_towards_the_login_limit_and_the_password_does_not_reset_it(web_settings, db, owner):
    """From a new address each time, as an attacker with the password and many addresses would: only the
    account's counter stands between them and guessing codes."""
    app = make_web_app(web_settings.replace(LOGIN_RATE_LIMIT=3))
    secret, _codes = enrol(db, web_settings, owner)
    browser, addresses = Browser(app), (f"127.0.0.{n}" for n in range(100, 200))

    def fresh() -> dict:
        return {"environ_base": {"REMOTE_ADDR": next(addresses)}}

    password_step(browser, **fresh())
    for _ in range(2):
        assert code_step(browser, wrong(secret), **fresh()).status_code == 400
    password_step(browser, **fresh())  # the right password again: the two failures still count
    assert code_step(browser, wrong(secret), **fresh()).status_code == 400
    assert code_step(browser, code(secret, 1), **fresh()).status_code == 429
    password_step(browser, **fresh())  # the password step is not locked for the account (nobody could be) ...
    response = code_step(browser, code(secret, 1), **fresh())
    assert response.status_code == 429 and not signed_in(browser)  # ... its second step is, from everywhere
    assert "wrong codes for this account" in response.get_data(as_text=True)


def _setup_page(browser) -> tuple[str, str]:
    html = browser.get("/account/2fa").get_data(as_text=True)
    secret = re.search(r'id="totp-secret".*?<code>([A-Z2-7]+)</code>', html, re.S).group(1)
    return html, secret


def test_set_up_shows_a_qr_code_and_a_wrong_code_does_not_enable(owner_browser, db, owner):
    html, secret = _setup_page(owner_browser)
    qr = html.split('id="totp-qr">')[1].split("</figure>")[0]
    assert qr.startswith("<svg") and "<path" in qr and secret not in qr
    assert _setup_page(owner_browser)[1] == secret  # reloading keeps the secret the app scanned
    response = owner_browser.post("/account/2fa", {"code": wrong(secret)}, csrf_page="/account/2fa")
    assert response.status_code == 400 and "wrong" in response.get_data(as_text=True)
    with db.session() as s:
        assert not two_factor.is_enabled(s.get(User, owner.id))
    assert "Set up two-factor authentication" in owner_browser.get("/account").get_data(as_text=True)


def test_set_up_with_the_right_code_shows_ten_codes_once_and_ends_other_sessions(web_app, owner_browser, db, owner):
    other_device = Browser(web_app).login(*OWNER)
    _html, secret = _setup_page(owner_browser)
    response = owner_browser.post("/account/2fa", {"code": code(secret)}, csrf_page="/account/2fa")
    html = response.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z2-9-]+)</code></li>", html)
    assert response.status_code == 200 and len(set(codes)) == 10
    assert signed_in(owner_browser) and not signed_in(other_device)
    account = owner_browser.get("/account").get_data(as_text=True)
    assert "10 of 10 recovery codes left" in account and not any(c in account for c in codes)
    assert owner_browser.get("/account/2fa").status_code == 302  # nothing more to set up


def test_new_recovery_codes_and_switching_off_from_the_account_page(owner_browser, db, web_settings, owner):
    secret, old = enrol(db, web_settings, owner)
    browser = Browser(owner_browser.app)
    password_step(browser)
    code_step(browser, code(secret, 0))
    response = browser.post("/account/2fa/recovery-codes", {"tfr-code": wrong(secret)}, csrf_page="/account")
    assert response.status_code == 400 and 'id="tfr-code-error"' in response.get_data(as_text=True)
    response = browser.post("/account/2fa/recovery-codes", {"tfr-code": code(secret, 1)}, csrf_page="/account")
    new = re.findall(r"<li><code>([a-z2-9-]+)</code></li>", response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    response = browser.post("/account/2fa/disable", {"tfd-password": "wrong-password", "tfd-code": new[0]},
                            csrf_page="/account")
    assert response.status_code == 400 and 'id="tfd-password-error"' in response.get_data(as_text=True)
    response = browser.post("/account/2fa/disable", {"tfd-password": OWNER[1], "tfd-code": new[0]},
                            csrf_page="/account")
    assert response.status_code == 302 and signed_in(browser)
    with db.session() as s:
        assert not two_factor.is_enabled(s.get(User, owner.id))
    assert Browser(browser.app).login(*OWNER).get("/").status_code == 200  # the password alone again


def test_require_admin_2fa_sends_an_admin_without_it_to_the_set_up(web_settings, db, admin, owner, owner_domain):
    app = make_web_app(web_settings.replace(REQUIRE_ADMIN_2FA=True))
    browser = Browser(app).login("admin@people.test", "admin-password")
    for url in ("/", "/stats", "/admin/users", "/account", f"/domains/{owner_domain}"):
        response = browser.get(url)
        assert response.status_code == 302 and response.headers["Location"] == "/account/2fa", url
    response = browser.post("/account/tokens", {"token-name": "x"}, csrf_page="/account/2fa")
    assert response.status_code == 302 and response.headers["Location"] == "/account/2fa"
    assert browser.get("/account/2fa").status_code == 200
    api_for(app, db, admin)("GET", "/users", status=200)  # API tokens keep working
    assert Browser(app).login(*OWNER).get("/").status_code == 200  # owners are not asked
    _html, secret = _setup_page(browser)
    assert browser.post("/account/2fa", {"code": code(secret)}, csrf_page="/account/2fa").status_code == 200
    assert signed_in(browser)


def test_without_require_admin_2fa_an_admin_is_not_sent_anywhere(admin_browser):
    assert signed_in(admin_browser)


def test_codes_guessed_on_the_account_page_count_towards_the_login_limit(web_settings, db, owner):
    """Someone holding a stolen session must not guess codes there for new recovery codes without limit."""
    app = make_web_app(web_settings.replace(LOGIN_RATE_LIMIT=3))
    secret, _codes = enrol(db, web_settings, owner)
    browser = Browser(app)
    password_step(browser)
    assert code_step(browser, code(secret, 0)).status_code == 302
    for _ in range(3):
        response = browser.post("/account/2fa/recovery-codes", {"tfr-code": wrong(secret)}, csrf_page="/account")
        assert response.status_code == 400
    response = browser.post("/account/2fa/recovery-codes", {"tfr-code": code(secret, 1)}, csrf_page="/account")
    assert response.status_code == 400 and "Too many failed logins" in response.get_data(as_text=True)
    response = browser.post("/account/2fa/disable", {"tfd-password": OWNER[1], "tfd-code": code(secret, 1)},
                            csrf_page="/account")
    assert response.status_code == 400 and "Too many failed logins" in response.get_data(as_text=True)
    with db.session() as s:
        assert two_factor.is_enabled(s.get(User, owner.id))
