"""`PYTHONPATH=. python -m bench.retention [--db postgresql|sqlite] [--messages 50000] [--batch 500]`: how long one
retention batch holds its locks, and what a writer beside it (the spool) waits meanwhile.

Seeds a fresh database with `--messages` final messages whose content is due (RETENTION_DAYS passed) and as
many whose metadata is due (LOG_RETENTION_DAYS passed), each with one delivery and one attempt, then runs the
sweep's steps batch by batch as mailferry.retention.sweep does (with its pause between batches), timing each batch from its first UPDATE or
DELETE to the end of its COMMIT (the window its row locks, or SQLite's write lock, are held), while another
thread commits one new queued message every few milliseconds and times each of its commits."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import event, insert, text

from harness.databases import PostgresDatabase, migrate
from harness.settings import make_settings
from mailferry.db import Database
from mailferry.models import Delivery, DeliveryAttempt, Message, utcnow
from mailferry.models.message import DELIVERED, DONE, QUEUED
from mailferry.retention import PAUSE, STEPS, Run, Swept, cutoffs

RAW = b"From: a@outside.test\r\nTo: hi@owned.test\r\nSubject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n"


def _message(message_id: str, completed, state: str = DONE) -> dict:
    return {"id": message_id, "received_at": completed or utcnow(), "mail_from": "a@outside.test", "rcpt_tos": ["hi@owned.test"],
            "size": len(RAW), "raw": RAW, "state": state, "completed_at": completed if state == DONE else None}


def seed(db: Database, count: int, now) -> None:
    delivery_id = 0
    for label, age in (("content", timedelta(days=10)), ("gone", timedelta(days=40))):
        for start in range(0, count, 5000):
            messages, deliveries, attempts = [], [], []
            for n in range(start, min(count, start + 5000)):
                delivery_id += 1
                at = now - age - timedelta(seconds=n)
                messages.append(_message(f"{label}{n:08d}", at))
                deliveries.append({"id": delivery_id, "message_id": f"{label}{n:08d}", "recipient": "hi@owned.test",
                                   "destination": "me@dest.test", "destination_domain": "dest.test",
                                   "state": DELIVERED, "updated_at": at})
                attempts.append({"delivery_id": delivery_id, "at": at, "outcome": DELIVERED})
            with db.engine.begin() as conn:
                conn.execute(insert(Message), messages)
                conn.execute(insert(Delivery), deliveries)
                conn.execute(insert(DeliveryAttempt), attempts)
    with db.engine.begin() as conn:  # as autovacuum would have: with no statistics the planner scans by state
        conn.execute(text("ANALYZE"))


def _spool_like_writer(db: Database, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(insert(Message), [_message(uuid.uuid4().hex, None, QUEUED)])
        latencies.append(time.perf_counter() - started)
        time.sleep(0.005)


def run(db: Database, batch: int) -> dict:
    settings = make_settings(RETENTION_DAYS=7, LOG_RETENTION_DAYS=30)
    now = utcnow()
    swept = Swept()
    work = Run(now, cutoffs(settings, now), batch, swept)
    first_write: list[float] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _dml(conn, cursor, statement, *_args) -> None:
        if not first_write and statement.lstrip().upper().startswith(("UPDATE", "DELETE")):
            first_write.append(time.perf_counter())

    commit_started: list[float] = []

    @event.listens_for(db.engine, "commit")
    def _commit(conn) -> None:
        commit_started.append(time.perf_counter())

    baseline, stop = [], threading.Event()
    threading.Timer(2.0, stop.set).start()
    _spool_like_writer(Database(db.url), stop, baseline)  # the writer alone, for comparison
    held: dict[str, list[float]] = {step.__name__: [] for step in STEPS}
    commits: list[float] = []
    stop, writer_latencies = threading.Event(), []
    writer = threading.Thread(target=_spool_like_writer, args=(Database(db.url), stop, writer_latencies))
    writer.start()
    started = time.perf_counter()
    for step in STEPS:
        more = True
        while more:
            first_write.clear()
            commit_started.clear()
            with db.engine.begin() as conn:
                more = step(conn, work)
            if first_write:
                held[step.__name__].append(time.perf_counter() - first_write[0])
                commits.append(time.perf_counter() - commit_started[0])
            if more:
                time.sleep(PAUSE)
    total = time.perf_counter() - started
    stop.set()
    writer.join()
    ms = lambda values: {"batches": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),  # noqa: E731
                         "max_ms": round(max(values) * 1000, 1)} if values else {"batches": 0}
    return {"contents": swept.contents, "messages": swept.messages, "seconds": round(total, 2),
            "held": {name: ms(values) for name, values in held.items()}, "of_which_commit": ms(commits),
            "writer_commit_during_sweep": ms(writer_latencies), "writer_commit_alone": ms(baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.db == "postgresql":
        database = PostgresDatabase()
        url, cleanup = database.url, database.drop
    else:
        directory = tempfile.mkdtemp(prefix="mf-retention-")
        url, cleanup = f"sqlite:///{os.path.join(directory, 'bench.db')}", lambda: None
        migrate(url)
    db = Database(url)
    try:
        seed(db, args.messages, utcnow())
        print(run(db, args.batch))
    finally:
        db.dispose()
        cleanup()


if __name__ == "__main__":
    main()
