"""Shared fixtures: both databases, a private Redis, settings built without touching os.environ."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from harness.databases import PostgresDatabase, SqliteTemplate
from harness.redis_server import RedisServer
from harness.settings import TEST_SECRET_KEY, make_settings  # noqa: F401  (the fixtures below use them)
from mailferry.db import Database
from mailferry.queue import make_redis
from mailferry.settings import Settings

# Hypothesis: "ci" (the default, also `make test`) is bounded and deterministic: the same examples on every run,
# no example database, no per-example deadline (these tests talk to live servers over sockets). "fuzz" searches
# longer, with fresh random examples each run, e.g. HYPOTHESIS_PROFILE=fuzz pytest tests/smtp/test_fuzz_session.py.
hypothesis_settings.register_profile(
    "ci", max_examples=60, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.register_profile("fuzz", parent=hypothesis_settings.get_profile("ci"), max_examples=2000,
                                     derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# MAILFERRY_TEST_DBS=sqlite or =postgresql narrows the run; the default (and CI) runs both.
DB_KINDS = [k.strip() for k in os.environ.get("MAILFERRY_TEST_DBS", "sqlite,postgresql").split(",") if k.strip()]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> SqliteTemplate:
    return SqliteTemplate(str(tmp_path_factory.mktemp("sqlite-template")))


@pytest.fixture(scope="session")
def postgres_database():
    database = PostgresDatabase()
    yield database
    database.drop()


@pytest.fixture(params=DB_KINDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_template").fresh_url(str(tmp_path))
    else:
        database = request.getfixturevalue("postgres_database")
        database.truncate()
        yield database.url


@pytest.fixture
def db(db_url) -> Database:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    conn = make_redis(redis_server.url)
    conn.flushall()
    conn.close()
    return redis_server.url


@pytest.fixture
def redis_conn(redis_url):
    conn = make_redis(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def settings(db_url, redis_url, dns_server) -> Settings:
    """Every test's DNS is the loopback server (empty unless the test publishes records): the inbound checks
    and delivery never ask the machine's resolver."""
    return make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_LISTEN="127.0.0.1:0",
                         DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=2)


@pytest.fixture(scope="session")
def dns_server_session():
    from harness.dns_server import DnsServer

    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(dns_server_session):
    """A real DNS server on loopback, emptied for each test: point DNS_NAMESERVERS at .nameservers."""
    dns_server_session.clear()
    return dns_server_session


@pytest.fixture(scope="session")
def rspamd_server(tmp_path_factory, dns_server_session):
    """One real rspamd per session (fails, never skips, when rspamd is not installed: CI installs it)."""
    from harness.rspamd_server import RspamdServer

    server = RspamdServer(str(tmp_path_factory.mktemp("rspamd")), dns_nameservers=dns_server_session.nameservers)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rspamd(rspamd_server):
    """The session's rspamd, started again if an earlier test stopped it."""
    if not rspamd_server.running:
        rspamd_server.start()
    return rspamd_server
