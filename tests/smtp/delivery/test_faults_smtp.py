"""SIGKILL of the real `python -m smtp` while it takes a message: the message is absent or whole, never half
stored; what got a 250 is delivered exactly once, counted at the destination's sink."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from harness.net import wait_for
from tests.smtp.conftest import RawClient
from tests.smtp.delivery.faults import Mailbag, assert_each_accepted_delivered_once, body, new_token, wait_all_final


@pytest.fixture
def hello(world, internet):
    """hello@alias.test -> bob@dest.test, whose MX is a sink on 127.0.0.2."""
    world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    return internet.sink("127.0.0.2")


def start_data(address, token: str) -> tuple[RawClient, bytes]:
    """A session past DATA's 354; returns the client and the message it is to send."""
    client = RawClient(address)
    for command in ("EHLO client.sender.test", "MAIL FROM:<alice@sender.test>", "RCPT TO:<hello@alias.test>"):
        assert client.cmd(command).startswith("250"), command
    assert client.cmd("DATA").startswith("354")
    return client, body(token, padding=64 * 1024)


def only_the_answered_ones_after_a_restart(client, bag, db, sink, smtp_servers, worker) -> None:
    """The killed session's client saw its connection drop; a restarted server takes mail again; the one
    message that got a 250 before the kill and the one after it are the only ones stored and delivered."""
    assert client.closed()
    restarted = smtp_servers()
    assert bag.send(restarted.address).accepted
    messages = assert_each_accepted_delivered_once(db, bag, [sink], what=worker.log())
    assert len(messages) == 2


def test_killed_mid_body_stores_nothing(hello, db, smtp_servers, workers):
    bag, server, worker = Mailbag(), smtp_servers(), workers()
    assert bag.send(server.address).accepted
    client, raw = start_data(server.address, new_token())
    client.send(raw[: len(raw) // 2])
    time.sleep(0.3)  # the server has read the first half
    server.kill()
    only_the_answered_ones_after_a_restart(client, bag, db, hello, smtp_servers, worker)


class CommitBlocker:
    """Holds a lock the spool's commit needs, from outside the server: on SQLite the database's write lock,
    on PostgreSQL a table lock on `messages` or on `deliveries` (then the INSERT of the message has run inside
    the spool's transaction and the one of its deliveries waits: a kill there must leave no half)."""

    def __init__(self, db_url: str, table: str):
        self.db_url, self.table = db_url, table
        self.sqlite = db_url.startswith("sqlite")

    def __enter__(self) -> "CommitBlocker":
        if self.sqlite:
            self.connection = sqlite3.connect(self.db_url.split("///", 1)[1], isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(self.db_url)
            self.connection = self.engine.connect()
            self.connection.execute(text(f"LOCK TABLE {self.table} IN SHARE MODE"))
        return self

    def wait_blocked(self, client: RawClient) -> None:
        """Until the spool waits for this lock (PostgreSQL says so; on SQLite: the server stays silent)."""
        if self.sqlite:
            client.sock.settimeout(1.0)
            with pytest.raises(TimeoutError):
                client.sock.recv(1)
            return
        waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE :q")
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as observer:  # a fresh snapshot each time
            wait_for(lambda: observer.execute(waiting, {"q": f"INSERT INTO {self.table}%"}).scalar(),
                     what=f"the spool waiting on {self.table}")

    def __exit__(self, *exc) -> None:
        self.connection.rollback()
        self.connection.close()
        if not self.sqlite:
            self.engine.dispose()


@pytest.mark.parametrize("table", ["messages", "deliveries"])
def test_killed_after_the_final_dot_before_the_reply_stores_nothing(hello, db, db_url, smtp_servers, workers, table):
    if table == "deliveries" and db_url.startswith("sqlite"):
        pytest.skip("SQLite has one lock for the whole database: the 'messages' case is the same there")
    bag, server, worker = Mailbag(), smtp_servers(), workers()
    assert bag.send(server.address).accepted
    wait_all_final(db, what=worker.log())  # the worker holds no lock of its own while we hold ours
    client, raw = start_data(server.address, new_token())
    with CommitBlocker(db_url, table) as blocker:
        client.send(raw + b".\r\n")
        blocker.wait_blocked(client)
        server.kill()
    only_the_answered_ones_after_a_restart(client, bag, db, hello, smtp_servers, worker)


def test_killed_right_after_its_250_still_delivers(hello, db, smtp_servers, workers):
    """Killed between the commit and the dispatch to Redis, or just after: the reconciler finds it."""
    bag, server = Mailbag(), smtp_servers()
    assert bag.send(server.address).accepted
    server.kill()
    worker = workers()
    assert_each_accepted_delivered_once(db, bag, [hello], what=worker.log())


def test_killed_at_a_random_point_of_concurrent_sessions(hello, db, smtp_servers, workers):
    """Sessions in every phase (mid-body, committing, answered) when the kill comes: each is absent or whole."""
    bag, server, worker = Mailbag(), smtp_servers(), workers()
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            bag.send(server.address, padding=16 * 1024, timeout=5)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(bag.accepted()) >= 8, timeout=30, what="a few messages accepted")
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    restarted = smtp_servers()
    assert bag.send(restarted.address).accepted

    assert_each_accepted_delivered_once(db, bag, [hello], what=worker.log())
    assert any(not item.accepted for item in bag.sent)  # some sessions were cut off
