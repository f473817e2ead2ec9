from sqlalchemy import inspect

from harness.databases import downgrade, migrate
from mailferry.models import Base


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


def test_the_schema_the_migrations_make_is_the_models(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_destinations_in_use_before_0004_stay_deliverable(db):
    """Every destination an alias named before verified destinations existed, and every account address,
    is a verified mailbox after the upgrade; nothing else is."""
    from sqlalchemy import text

    db.dispose()
    downgrade(db.url, "0003")
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO users (id, email, password_hash, role, active, session_version, created_at) "
                       "VALUES (1, 'Owner@Example.org', 'x', 'owner', true, 0, '2026-01-01')"))
        c.execute(text("INSERT INTO domains (id, name, owner_id, verify_token, verified, force_verified, created_at) "
                       "VALUES (1, 'alias.test', 1, 't', true, false, '2026-01-01')"))
        c.execute(text("INSERT INTO aliases (domain_id, local_part, destinations, enabled, note, forwarded_count, "
                       "bounced_count, created_at) VALUES (1, 'hello', '[\"Them@Gmail.test\", \"b@x.test\"]', true, "
                       "'', 0, 0, '2026-01-01')"))
    db.dispose()
    migrate(db.url)
    with db.engine.connect() as c:
        rows = c.execute(text("SELECT owner_id, address, verified_by, verified_at IS NOT NULL FROM mailboxes "
                              "ORDER BY address")).all()
    assert [tuple(r) for r in rows] == [(1, "b@x.test", "migration", True), (1, "owner@example.org", "migration", True),
                                        (1, "them@gmail.test", "migration", True)]
