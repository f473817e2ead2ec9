"""Outcome commits retried through a database outage, within our lease only (the 30 s outage with real
processes is tests/smtp/delivery/test_faults_storage.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from mailferry.db import Database
from smtp.delivery import recommit
from smtp.delivery.lease import Holder


def _lease(db: Database, seconds: int) -> Holder:
    return Holder(db, "MESSAGEID", "this-worker", seconds).claimed(time.monotonic())


@pytest.fixture
def away(tmp_path):
    """A database that cannot be opened (a directory where the file should be), as when it is down."""
    database = Database(f"sqlite:///{tmp_path}")
    yield database
    database.dispose()


def test_a_commit_goes_through_once_the_database_is_back(db, away):
    tries: list[str] = []

    def commit() -> int:
        tries.append("try")
        target = away if len(tries) < 3 else db  # away for the first two tries
        with target.engine.begin() as conn:
            return conn.execute(text("SELECT 1")).scalar()

    assert recommit.until_committed(commit, _lease(db, 60), "settle", every=0.05) == 1
    assert len(tries) == 3


def test_it_gives_up_when_the_lease_runs_out(away):
    def commit() -> None:
        with away.engine.begin() as conn:
            conn.execute(text("SELECT 1"))

    started = time.monotonic()
    with pytest.raises(OperationalError):
        recommit.until_committed(commit, _lease(away, 1), "settle", every=0.05)
    assert 0.8 <= time.monotonic() - started < 1.5  # it stops as the lease ends: then another worker may own it


def test_an_error_that_is_not_an_outage_is_raised_at_once(db):
    tries: list[str] = []

    def commit() -> None:
        tries.append("try")
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        recommit.until_committed(commit, _lease(db, 60), "settle", every=0.05)
    assert tries == ["try"]
