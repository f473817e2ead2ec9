"""X-Forwarded-For is believed only from TRUSTED_PROXIES: the client address the limiter and the audit log see."""

import pytest
from sqlalchemy import select

from app.proxies import TrustedProxies
from mailferry.models import AuditEvent
from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)
from tests.app.web_fixtures import Browser, make_web_app


def _failed_login_ip(web_settings, db, peer: str, forwarded: str, **settings) -> str:
    browser = Browser(make_web_app(web_settings.replace(**settings)))
    browser.client.post("/login", data={"email": "owner@people.test", "password": "wrong-pw",
                                        "csrf_token": browser.csrf()},
                        environ_base={"REMOTE_ADDR": peer}, headers={"X-Forwarded-For": forwarded})
    with db.session() as s:
        return s.scalar(select(AuditEvent.ip).where(AuditEvent.action == "login_failed").order_by(AuditEvent.id.desc()))


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(web_settings, db, owner):
    assert _failed_login_ip(web_settings, db, "10.0.0.5", "203.0.113.9", TRUSTED_PROXIES=("10.0.0.0/8",)) == \
        "203.0.113.9"


def test_an_untrusted_forwarded_for_is_ignored(web_settings, db, owner):
    assert _failed_login_ip(web_settings, db, "198.51.100.66", "203.0.113.9", TRUSTED_PROXIES=("10.0.0.0/8",)) == \
        "198.51.100.66"
    assert _failed_login_ip(web_settings, db, "10.0.0.5", "203.0.113.9") == "10.0.0.5"  # no proxy trusted


def test_the_limiter_counts_the_forwarded_client_not_the_proxy(web_settings, owner):
    """Behind a proxy every user shares its address: the pair must be (account, real client)."""
    app = make_web_app(web_settings.replace(TRUSTED_PROXIES=("10.0.0.0/8",), LOGIN_RATE_LIMIT=2))

    def login(client_ip: str, password: str) -> int:
        browser = Browser(app)
        return browser.client.post("/login", data={"email": "owner@people.test", "password": password,
                                                   "csrf_token": browser.csrf()},
                                   environ_base={"REMOTE_ADDR": "10.0.0.5"},
                                   headers={"X-Forwarded-For": client_ip}).status_code

    assert [login("198.51.100.66", "wrong-pw") for _ in range(3)] == [200, 200, 429]
    assert login("203.0.113.10", "owner-password") == 302


@pytest.mark.parametrize(("chain", "client"), [
    ("203.0.113.9", "203.0.113.9"),
    ("198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left part is the client's own claim
    ("203.0.113.9, 10.0.0.7", "203.0.113.9"),  # a second proxy of ours in between
    ("10.0.0.7, 10.0.0.8", "10.0.0.5"),  # only proxies: the peer
    ("not-an-address, 203.0.113.9", "203.0.113.9"),
    ("203.0.113.9, garbage", "10.0.0.5"),  # garbage after our proxy: believe nothing beyond it
    ("", "10.0.0.5"),
])
def test_the_client_is_the_right_most_address_that_is_not_ours(chain, client):
    assert TrustedProxies(lambda e, s: [], ["10.0.0.0/8"]).client("10.0.0.5", chain) == client


def test_scheme_and_host_are_believed_only_from_a_trusted_proxy():
    seen = {}

    def app(environ, start_response):
        seen.update(scheme=environ["wsgi.url_scheme"], host=environ.get("HTTP_HOST"))
        return []

    proxies = TrustedProxies(app, ["10.0.0.0/8"])
    headers = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "mail.example.org", "HTTP_HOST": "web:8000",
               "wsgi.url_scheme": "http"}
    proxies({**headers, "REMOTE_ADDR": "10.0.0.5"}, None)
    assert seen == {"scheme": "https", "host": "mail.example.org"}
    proxies({**headers, "REMOTE_ADDR": "198.51.100.66"}, None)
    assert seen == {"scheme": "http", "host": "web:8000"}
