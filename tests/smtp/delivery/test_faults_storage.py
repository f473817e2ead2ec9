"""The database of record goes away: PostgreSQL refusing connections for 30 s, the SQLite database's disk full.
The SMTP server answers 451 meanwhile (never 250), both it and the workers recover by themselves, and every
message that got a 250 is delivered exactly once, counted at the sink."""

from __future__ import annotations

import errno
import os
import time

import pytest

from harness.net import wait_for
from harness.settings import make_settings
from mailferry.db import Database
from smtp import replies
from tests.conftest import DB_KINDS
from tests.smtp.delivery.conftest import SmtpProcess, WorkerProcess, World, service_env
from tests.smtp.delivery.faults import Mailbag, assert_each_accepted_delivered_once
from tests.support.processes import Launcher

OUTAGE = 30.0  # seconds, as issue 13 asks


@pytest.fixture
def stack(redis_url, internet, tmp_path):
    """stack(database_url) -> (db, world, launch_smtp, launch_worker, sink) on that database: hello@alias.test
    forwards to bob@dest.test, whose MX is a sink on 127.0.0.2."""
    made: list[tuple[Database, Launcher, Launcher]] = []

    def build(database_url: str):
        env = service_env(database_url, redis_url, internet)
        db = Database(database_url)
        world = World(db, make_settings(**env), internet)
        world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
        internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
        smtp = Launcher(SmtpProcess, env, str(tmp_path), "smtp")
        worker = Launcher(WorkerProcess, env, str(tmp_path), "worker")
        made.append((db, smtp, worker))
        return db, smtp, worker, internet.sink("127.0.0.2")

    yield build
    for db, smtp, worker in made:
        smtp.kill_all()
        worker.kill_all()
        db.dispose()


@pytest.mark.skipif("postgresql" not in DB_KINDS, reason="MAILFERRY_TEST_DBS leaves PostgreSQL out")
def test_postgresql_refusing_connections_gives_451_then_everything_resumes(private_postgres, stack):
    cluster, url = private_postgres
    db, smtp, workers, sink = stack(url)
    bag, server, worker = Mailbag(), smtp(), workers()
    assert bag.send(server.address).accepted
    sink.handler.stalling.set()  # the next delivery is under way when the database goes
    in_flight = bag.send(server.address)
    wait_for(sink.handler.stalled.is_set, timeout=30, what=f"a delivery in flight; {worker.log()}")

    cluster.stop()
    down_since = time.monotonic()
    sink.handler.stalling.clear()  # its 451 cannot be recorded: the worker's job fails
    during: list[str] = []
    while time.monotonic() - down_since < OUTAGE:
        sent = bag.send(server.address)
        during.append(sent.reply if sent.code else "no reply")
        time.sleep(1)
    cluster.start()
    recovered = wait_for(lambda: bag.send(server.address).accepted, timeout=20, interval=0.5,
                         what=f"a 250 again; smtp log:\n{server.log()[-3000:]}")

    assert in_flight.accepted and recovered
    assert len(during) >= 20 and set(during) == {replies.TEMPORARY_FAILURE[4:]}, set(during)
    assert server.alive() and worker.alive(), worker.log()[-3000:]
    assert_each_accepted_delivered_once(db, bag, [sink], timeout=60, what=worker.log()[-3000:])


def fill(directory: str) -> str:
    """Write a file until the file system is full; returns its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


@pytest.mark.skipif("sqlite" not in DB_KINDS, reason="MAILFERRY_TEST_DBS leaves SQLite out")
def test_a_full_disk_under_the_sqlite_database_gives_451_and_loses_nothing(small_disk, sqlite_template, stack):
    db, smtp, workers, sink = stack(sqlite_template.fresh_url(small_disk))
    bag, server, worker = Mailbag(), smtp(), workers()
    assert bag.send(server.address).accepted
    filler = fill(small_disk)

    refused = [bag.send(server.address, padding=1024 * 1024) for _ in range(3)]
    os.remove(filler)
    after = bag.send(server.address, padding=1024 * 1024)

    assert [sent.reply for sent in refused] == [replies.TEMPORARY_FAILURE[4:]] * 3
    assert after.accepted, after.reply
    assert_each_accepted_delivered_once(db, bag, [sink], what=worker.log()[-3000:])
    assert server.alive() and worker.alive()
