"""Test databases: a migrated SQLite template copied per test; one private PostgreSQL database per session."""

from __future__ import annotations

import os
import shutil
import uuid

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from mailferry.models import Base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_ADMIN_URL = os.environ.get("MAILFERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def alembic_config(url: str) -> Config:
    cfg = Config(os.path.join(ROOT, "alembic.ini"))
    cfg.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


class SqliteTemplate:
    def __init__(self, workdir: str):
        self.template = os.path.join(workdir, "template.db")
        migrate(f"sqlite:///{self.template}")

    def fresh_url(self, directory: str) -> str:
        path = os.path.join(directory, f"mf-{uuid.uuid4().hex[:8]}.db")
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


class PostgresDatabase:
    """CREATE DATABASE mf_test_<random> on the local server; tables truncated between tests."""

    def __init__(self):
        self.name = f"mf_test_{uuid.uuid4().hex[:10]}"
        self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        migrate(self.url)
        self._engine = create_engine(self.url)

    def truncate(self) -> None:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with self._engine.begin() as c:
            c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))

    def drop(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()
