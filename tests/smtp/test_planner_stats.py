"""Planner statistics refreshed while the spool fills the queue tables: the claim keeps using the primary key."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text

from harness.net import wait_for
from mailferry.models import Delivery, Message
from smtp.planner_stats import StatsRefresher
from smtp.routes import FORWARD, Route, message_rows
from smtp.spool import new_message_id


def _queue(db, count: int) -> list[str]:
    ids, messages, deliveries = [], [], []
    for _ in range(count):
        message_id = new_message_id()
        message, rows = message_rows(message_id, mail_from="s@example.org", raw=b"x" * 4096,
                                     routes=[Route("a@alias.test", ("d@dest.test",), FORWARD, None, None)])
        ids.append(message_id)
        messages.append(message)
        deliveries += rows
    with db.engine.begin() as connection:
        connection.execute(insert(Message.__table__), messages)
        connection.execute(insert(Delivery.__table__), deliveries)
    return ids


def _plan(db, sql: str, ids: list[str]) -> str:
    quoted = ", ".join(f"'{i}'" for i in ids)
    with db.engine.connect() as connection:
        return "\n".join(connection.execute(text(f"EXPLAIN {sql.format(ids=quoted)}")).scalars())


def test_after_a_burst_the_claim_and_the_load_use_their_indexes(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    refresher = StatsRefresher(db, min_rows=500)
    refresher.start()
    try:
        ids = _queue(db, 3000)
        refresher.committed(3000)
        wait_for(lambda: refresher.runs == 1, what="ANALYZE after the burst")
    finally:
        refresher.stop()

    batch = ids[-20:]
    claim = _plan(db, "UPDATE messages SET lease_owner = 'w' WHERE id IN ({ids}) AND state = 'queued'", batch)
    load = _plan(db, "SELECT * FROM deliveries WHERE message_id IN ({ids}) ORDER BY id", batch)
    assert "pk_messages" in claim, claim
    # the estimate is right (which scan that makes cheapest depends on the table's size)
    assert any("Scan" in line and "rows=20 " in line for line in load.splitlines()), load


def test_it_waits_for_the_tables_to_grow_and_does_nothing_on_sqlite(db):
    refresher = StatsRefresher(db, min_rows=1000)
    refresher.start()
    try:
        refresher.committed(999)
        assert not refresher._due.is_set()
        refresher.committed(1)
        assert refresher._due.is_set() == (db.engine.dialect.name == "postgresql")
    finally:
        refresher.stop()
