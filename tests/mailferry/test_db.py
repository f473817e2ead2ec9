"""Engines built from a URL: the workers' outcome commits may skip the WAL flush, the spool's never do."""

from __future__ import annotations

from sqlalchemy import text

from mailferry.db import Database
from smtp.delivery import context

# What each database reports for a durable commit and for one that skips the WAL flush.
DURABLE = {"postgresql": "on", "sqlite": 2}  # PRAGMA synchronous: 1 = NORMAL, 2 = FULL
FAST = {"postgresql": "off", "sqlite": 1}


def flush_setting(db: Database) -> str | int:
    """synchronous_commit (PostgreSQL) or PRAGMA synchronous (SQLite) of a connection of db's pool."""
    query = "SHOW synchronous_commit" if db.engine.dialect.name == "postgresql" else "PRAGMA synchronous"
    with db.engine.connect() as connection:
        return connection.scalar(text(query))


def test_commits_are_durable_unless_asked_otherwise(db_url):
    durable, fast = Database(db_url), Database(db_url, durable_commits=False)
    kind = durable.engine.dialect.name
    try:
        assert (flush_setting(durable), flush_setting(fast)) == (DURABLE[kind], FAST[kind])
        with fast.engine.begin() as connection:  # still a working engine on either database
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        durable.dispose()
        fast.dispose()


def test_the_workers_commit_durably_by_default_and_asynchronously_when_told(settings):
    assert settings.DELIVERY_ASYNC_COMMIT is False
    for value, expected in ((True, FAST), (False, DURABLE)):
        ctx = context.build(settings.replace(DELIVERY_ASYNC_COMMIT=value))
        try:
            assert flush_setting(ctx.db) == expected[ctx.db.engine.dialect.name]
        finally:
            ctx.db.dispose()
            ctx.redis.close()
