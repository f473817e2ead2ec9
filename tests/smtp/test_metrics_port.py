"""The SMTP server's metrics port: /readyz is 200 while it listens and 503 while it shuts down."""

from __future__ import annotations

import smtplib
import sqlite3
import threading
from contextlib import contextmanager

from sqlalchemy import text

from harness.net import free_port, wait_for
from smtp.server import ServerThread
from tests.support.metrics import get, scrape

MESSAGE = b"From: a@sender.test\r\nTo: john@alias.test\r\nSubject: hi\r\n\r\nhello\r\n"


@contextmanager
def messages_locked(db):
    """Another connection holds the write lock a spool commit needs, until the block ends."""
    if db.engine.dialect.name == "sqlite":
        holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with db.engine.connect() as conn:
        conn.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.rollback()


def test_readiness_turns_503_while_a_commit_holds_up_the_shutdown(world, settings, db):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    inbound = ServerThread(settings.replace(SMTP_LISTEN=("127.0.0.1", 0), METRICS_LISTEN=("127.0.0.1", port)))
    address = inbound.start()
    stopper = threading.Thread(target=inbound.stop)
    replies: list = []
    try:
        assert get(f"{base}/readyz") == (200, "ready\n")
        assert scrape(base).value("mailferry_smtp_connections_open") is not None
        with messages_locked(db):
            sender = threading.Thread(target=lambda: replies.append(_send(address)))
            sender.start()
            wait_for(lambda: any(s.busy for s in inbound.server.sessions), timeout=10, what="a session committing")
            stopper.start()
            wait_for(lambda: get(f"{base}/readyz")[0] == 503, timeout=10, what="/readyz 503 while shutting down")
        sender.join(20)
        stopper.join(30)
    finally:
        if not stopper.is_alive():
            inbound.stop()
    assert replies == [{}]  # the message held up by the lock was still committed: nothing accepted is lost
    assert get(f"{base}/readyz")[0] == 0  # the port is closed with the server


def _send(address) -> dict:
    with smtplib.SMTP(*address, timeout=20) as client:
        return client.sendmail("a@sender.test", ["john@alias.test"], MESSAGE)
