"""Fixtures for the dashboard and API tests (imported by each view test package's conftest).

The app runs with CSRF protection on, as in production: `Browser` reads the token from a page like a
browser would and sends it with every POST.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pytest
from flask import request, request_finished

from app import create_app
from app.services.domains import add_domain
from app.services.tokens import create_token
from mailferry.logs import JsonFormatter
from mailferry.models import Message, User
from mailferry.models.message import QUARANTINED
from smtp.routes import Route, build_message

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class Browser:
    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def csrf(self, page: str = "/login") -> str:
        html = self.client.get(page).get_data(as_text=True)
        match = CSRF.search(html)
        assert match, f"no CSRF token on {page}"
        return match.group(1)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, csrf_page: str = "/login", **kw):
        return self.client.post(url, data={**(data or {}), "csrf_token": self.csrf(csrf_page)}, **kw)

    def login(self, email: str, password: str):
        response = self.post("/login", {"email": email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return self


def make_web_app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def web_settings(app_settings, redis_url):
    return app_settings.replace(REDIS_URL=redis_url)


@pytest.fixture
def web_app(web_settings):
    app = make_web_app(web_settings)
    yield app
    app.extensions["mailferry.db"].dispose()


@dataclass(frozen=True)
class Recorded:
    method: str
    url: str
    status: int
    headers: str
    body: str


@pytest.fixture
def responses(web_app) -> list[Recorded]:
    """Every response web_app sends while the test runs (test clients and live servers alike), headers and
    body as text; static files (streamed from the repository) are left out."""
    recorded: list[Recorded] = []

    def record(_sender, response, **_extra) -> None:
        if not response.direct_passthrough:
            recorded.append(Recorded(request.method, request.full_path, response.status_code,
                                     str(response.headers), response.get_data(as_text=True)))

    request_finished.connect(record, web_app)
    yield recorded
    request_finished.disconnect(record, web_app)


@pytest.fixture
def log_lines(caplog):
    """A function returning every log line of the test so far (set-up included), DEBUG and up, as the JSON
    lines the deployment writes (mailferry.logs)."""
    caplog.set_level(logging.DEBUG)
    formatter = JsonFormatter()
    return lambda: [formatter.format(r) for r in caplog.get_records("setup") + caplog.get_records("call")]


@pytest.fixture
def browser(web_app):
    return Browser(web_app)


@pytest.fixture
def owner_browser(web_app, owner):
    return Browser(web_app).login("owner@people.test", "owner-password")


@pytest.fixture
def other_browser(web_app, other_owner):
    return Browser(web_app).login("other@people.test", "other-password")


@pytest.fixture
def admin_browser(web_app, admin):
    return Browser(web_app).login("admin@people.test", "admin-password")


@pytest.fixture
def owner_domain(db, owner) -> int:
    with db.session() as s:
        return add_domain(s, "owned.test", owner).id


def seed_message(db, message_id: str, domain_id: int, recipient: str, destinations: tuple[str, ...],
                 mail_from: str = "sender@outside.test", subject: str = "Hello", alias_id: int | None = None) -> str:
    raw = f"From: {mail_from}\r\nTo: {recipient}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}@t>\r\n\r\nHi\r\n"
    with db.session() as s:
        s.add(build_message(message_id, mail_from=mail_from, raw=raw.encode(), peer="127.0.0.9", helo="outside.test",
                            routes=[Route(recipient, destinations, domain_id=domain_id, alias_id=alias_id)]))
    return message_id


class Api:
    def __init__(self, app, secret: str | None):
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def __call__(self, method: str, path: str, json=None, status: int | None = None):
        response = self.client.open(f"/api/v1{path}", method=method, json=json, headers=self.headers)
        if status is not None:
            assert response.status_code == status, (method, path, response.status_code, response.get_data(as_text=True))
        return response


def api_for(app, db, user) -> Api:
    with db.session() as s:
        _token, secret = create_token(s, s.get(User, user.id), "test")
    return Api(app, secret)


@pytest.fixture
def owner_api(web_app, db, owner):
    return api_for(web_app, db, owner)


@pytest.fixture
def other_api(web_app, db, other_owner):
    return api_for(web_app, db, other_owner)


@pytest.fixture
def admin_api(web_app, db, admin):
    return api_for(web_app, db, admin)


def seed_quarantined(db, message_id: str, domain_id: int, recipient: str = "hello@owned.test",
                     destinations: tuple[str, ...] = ("me@dest.test",), received_at=None, spam_score: float = 9.5,
                     reason: str = "rspamd: add header, spam score 9.50") -> str:
    """A message the inbound checks held: state quarantined, no DSN ever, as smtp/handler.py spools it."""
    seed_message(db, message_id, domain_id, recipient, destinations, subject="Cheap watches")
    with db.session() as s:
        message = s.get(Message, message_id)
        message.state, message.dsn_block = QUARANTINED, "quarantined"
        message.spam_score, message.filter_reason = spam_score, reason
        if received_at is not None:
            message.received_at = received_at
    return message_id
