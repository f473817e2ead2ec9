from sqlalchemy import inspect

from mailferry.models import Base
from tests.support.databases import downgrade, migrate


def test_migrations_create_every_table_and_go_down_and_up(db):
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    db.dispose()
    downgrade(db.url, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    migrate(db.url)
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())


def test_redis_fixture_is_private(redis_conn):
    redis_conn.set("k", "v")
    assert redis_conn.get("k") == b"v"
