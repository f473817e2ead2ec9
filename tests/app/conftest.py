"""Fixtures for app/ tests: settings pointed at the loopback DNS server, users, and a published zone."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.services import users
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from app.services.users import create_user
from app.services.verification import expected_records
from harness.settings import make_settings
from mailferry.models import ROLE_ADMIN

SERVER_IP = "127.0.0.25"
HOSTNAME = "mx.mailferry.test"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2id with minimal cost: the same code path and hash format, without ~300 ms per hash on a busy CI box.
    test_users checks the production parameters separately."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def app_settings(db_url, dns_server, redis_url):
    """The private Redis too: services dispatch the notices they queue (never to a Redis on the default port)."""
    return make_settings(DATABASE_URL=db_url, DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1,
                         SMTP_PUBLIC_IPS=SERVER_IP, SMTP_HOSTNAME=HOSTNAME, REDIS_URL=redis_url)


@pytest.fixture
def owner(db):
    with db.session() as s:
        return create_user(s, "owner@people.test", "owner-password")


@pytest.fixture
def other_owner(db):
    with db.session() as s:
        return create_user(s, "other@people.test", "other-password")


@pytest.fixture
def admin(db):
    with db.session() as s:
        return create_user(s, "admin@people.test", "admin-password", role=ROLE_ADMIN)


def publish(dns_server, records) -> None:
    """Serve each expected record (ExpectedRecord or dict) from the loopback DNS server."""
    for record in records:
        r = record if isinstance(record, dict) else record.__dict__
        value = f"{r['priority']} {r['value']}." if r["type"] == "MX" else r["value"]
        dns_server.add(r["name"], r["type"], value)


@pytest.fixture
def good_domain(db, owner, dns_server, app_settings):
    """example.test with a DKIM key and every expected record published; returns its id."""
    with db.session() as s:
        domain = add_domain(s, "example.test", owner)
        generate_key(s, domain, app_settings.SECRET_KEY)
        publish(dns_server, expected_records(domain, app_settings))
        return domain.id
