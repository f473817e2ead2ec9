"""Running a service function as an RQ job: the worker's job gets its own settings and database."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mailferry.db import Database
from mailferry.settings import Settings, load_settings

T = TypeVar("T")


def run_with_database(task: Callable[[Database, Settings], T]) -> T:
    """`task(db, settings)` with settings from the environment and a database disposed of afterwards."""
    settings = load_settings()
    db = Database(settings.DATABASE_URL)
    try:
        return task(db, settings)
    finally:
        db.dispose()
