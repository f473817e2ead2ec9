"""Engines built from a URL: the workers' outcome commits may skip the WAL flush, the spool's never do."""

from __future__ import annotations

from sqlalchemy import text

from mailferry.db import Database
from smtp.delivery import context


def _synchronous_commit(db: Database) -> str | None:
    if db.engine.dialect.name != "postgresql":
        return None
    with db.engine.connect() as connection:
        return connection.scalar(text("SHOW synchronous_commit"))


def test_commits_are_durable_unless_asked_otherwise(db_url):
    durable, fast = Database(db_url), Database(db_url, durable_commits=False)
    try:
        on, off = _synchronous_commit(durable), _synchronous_commit(fast)
        if durable.engine.dialect.name == "postgresql":
            assert (on, off) == ("on", "off")
        with fast.engine.begin() as connection:  # still a working engine on either database
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        durable.dispose()
        fast.dispose()


def test_the_workers_commit_durably_by_default_and_asynchronously_when_told(settings):
    assert settings.DELIVERY_ASYNC_COMMIT is False
    for value, expected in ((True, "off"), (False, "on")):
        ctx = context.build(settings.replace(DELIVERY_ASYNC_COMMIT=value))
        try:
            assert _synchronous_commit(ctx.db) in (expected, None)
        finally:
            ctx.db.dispose()
            ctx.redis.close()
