"""Spooling accepted messages: the database commit that must happen before 250, then dispatch through RQ.

One writer thread per process takes every message waiting at that moment and commits them in one
transaction (group commit across concurrent sessions) as two Core executemany INSERTs (messages,
deliveries; no ORM unit of work), so the event loop never blocks on the database and a busy server
pays one commit per batch, not per message. A dispatcher thread then enqueues the committed ids in
one Redis round trip and hands them back to the writer, which stamps `enqueued_at` inside its next
transaction, or alone once they have waited STAMP_DELAY for one: no write transaction of its own per batch
even when mail trickles in one message at a time (the worker's claim stamps what it takes, too). When Redis
is down the messages stay QUEUED with `enqueued_at` NULL and the worker's reconciler enqueues them later.
"""

from __future__ import annotations

import functools
import logging
import queue
import secrets
import threading
import time
from base64 import b32encode
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Update, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from mailferry.db import Database
from mailferry.logs import get_logger, log
from mailferry.metrics import smtp_metrics
from mailferry.models import Delivery, Message, utcnow
from mailferry.models.message import QUEUED
from mailferry.queue import enqueue_messages, get_queue, make_redis

from .planner_stats import StatsRefresher
from .routes import Route, message_rows

logger = get_logger("smtp.spool")
MAX_BATCH = 200
STAMP_CHUNK = 500  # ids per `enqueued_at` UPDATE (bound parameters stay far below the databases' limits)
STAMP_DELAY = 1.0  # seconds enqueued ids wait for a commit to ride along before they get a transaction of their own
_STOP = object()


def new_message_id() -> str:
    """16 characters of upper-case base32 (80 random bits)."""
    return b32encode(secrets.token_bytes(10)).decode("ascii")


@dataclass
class Incoming:
    """One message waiting for its commit; `done` resolves to its id or to the commit error."""

    message_id: str
    mail_from: str
    routes: list[Route]
    raw: bytes
    peer: str = ""
    helo: str = ""
    used_tls: bool = False
    state: str = QUEUED  # or QUARANTINED: stored, not dispatched
    findings: dict = field(default_factory=dict)  # the inbound checks' columns
    done: Future = field(default_factory=Future)


@dataclass(frozen=True)
class Enqueued:
    """Ids the dispatcher enqueued: the writer stamps their `enqueued_at`."""

    ids: tuple[str, ...]


class Spooler:
    def __init__(self, db: Database, redis_url: str, queue_name: str):
        self.db = db
        self.redis_url = redis_url
        self.queue_name = queue_name
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._committed: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._rq_queue = None
        self.planner_stats = StatsRefresher(db)

    def start(self) -> None:
        self.planner_stats.start()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="spool-dispatcher", daemon=True)
        writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        for thread in (writer, self._dispatcher):
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish what is queued (commits and dispatch), then end both threads."""
        self._incoming.put(_STOP)
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()
        self.planner_stats.stop()

    def submit(self, item: Incoming) -> Future:
        self._incoming.put(item)
        return item.done

    # ---- writer thread ----
    def _write_loop(self) -> None:
        held: list[str] = []  # enqueued ids waiting to ride along the next commit
        held_since = 0.0
        while True:
            wait = None if not held else max(0.0, held_since + STAMP_DELAY - time.monotonic())
            batch, stop = self._take(self._incoming, wait)
            items = [item for item in batch if isinstance(item, Incoming)]
            stamps = [mid for item in batch if isinstance(item, Enqueued) for mid in item.ids]
            if stamps and not held:
                held_since = time.monotonic()
            held += stamps
            if items:
                committed = self._commit(items, held)
                held = []
                if committed:
                    self._committed.put(committed)
            elif held and (len(held) >= STAMP_CHUNK or time.monotonic() - held_since >= STAMP_DELAY):
                self._stamp_alone(held)
                held = []
            if stop:
                self._committed.put(_STOP)
                if self._dispatcher is not None:  # its last stamps come after our _STOP
                    self._dispatcher.join(30)
                self._drain_stamps(held)
                return

    def _drain_stamps(self, stamps: list[str]) -> None:
        stamps = list(stamps)
        while True:
            try:
                item = self._incoming.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Enqueued):
                stamps.extend(item.ids)
        if stamps:
            self._stamp_alone(stamps)

    @staticmethod
    def _take(source: queue.SimpleQueue, timeout: float | None = None) -> tuple[list, bool]:
        try:
            first = source.get(timeout=timeout)
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = source.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[Incoming], stamps: list[str] = ()) -> list[str]:
        # A session that went away before its commit cancelled its future: that message is not spooled.
        batch = [item for item in batch if item.done.set_running_or_notify_cancel()]
        if not batch:
            if stamps:
                self._stamp_alone(stamps)
            return []
        try:
            self._insert(batch, stamps)
        except Exception:
            if stamps:
                self._stamp_alone(stamps)
            if len(batch) == 1:
                self._fail(batch[0])
                return []
            # One bad message must not refuse its neighbours: commit them one by one.
            return [item.message_id for item in batch if self._commit_one(item) and item.state == QUEUED]
        for item in batch:
            item.done.set_result(item.message_id)
        self.planner_stats.committed(len(batch))
        return [item.message_id for item in batch if item.state == QUEUED]

    def _commit_one(self, item: Incoming) -> bool:
        try:
            self._insert([item])
        except Exception:
            self._fail(item)
            return False
        item.done.set_result(item.message_id)
        return True

    def _insert(self, batch: list[Incoming], stamps: list[str] = ()) -> None:
        messages, deliveries = [], []
        for item in batch:
            message, rows = message_rows(item.message_id, mail_from=item.mail_from, routes=item.routes,
                                         raw=item.raw, peer=item.peer, helo=item.helo, used_tls=item.used_tls,
                                         state=item.state, findings=item.findings)
            messages.append(message)
            deliveries.extend(rows)
        with smtp_metrics().spool_commit.time(), self.db.engine.begin() as connection:
            connection.execute(insert(Message.__table__), messages)
            if deliveries:
                connection.execute(insert(Delivery.__table__), deliveries)
            if stamps:
                _stamp(connection, stamps)

    def _stamp_alone(self, ids: list[str]) -> None:
        try:
            with self.db.engine.begin() as connection:
                _stamp(connection, ids)
        except Exception as exc:
            log(logger, logging.WARNING, "could not stamp enqueued_at", error=type(exc).__name__, count=len(ids))

    @staticmethod
    def _fail(item: Incoming) -> None:
        logger.error("spool commit failed", exc_info=True, extra={"message_id": item.message_id})
        item.done.set_exception(SpoolError(item.message_id))

    # ---- dispatcher thread ----
    def _dispatch_loop(self) -> None:
        while True:
            batches, stop = self._take(self._committed)
            ids = [mid for batch in batches for mid in batch]
            if ids:
                self._dispatch(ids)
            if stop:
                return

    def _dispatch(self, ids: list[str]) -> None:
        try:
            if self._rq_queue is None:
                self._rq_queue = get_queue(make_redis(self.redis_url), self.queue_name)
            enqueue_messages(self._rq_queue, ids)
        except Exception as exc:
            for mid in ids:
                log(logger, logging.WARNING, "enqueue failed, left for the reconciler", message_id=mid,
                    error=type(exc).__name__)
            return
        self._incoming.put(Enqueued(tuple(ids)))  # stamped by the writer, in its next transaction
        for mid in ids:
            log(logger, logging.DEBUG, "enqueued", message_id=mid)


@functools.cache
def _stamp_statement() -> Update:
    """`enqueued_at` of the messages no worker holds. A row a worker's claim has locked is skipped (PostgreSQL's
    SKIP LOCKED; SQLite has no row locks): waiting for that worker would hold up this transaction, with the
    new messages' 250s, and the claim stamps it itself. Built once: it runs with every spool commit."""
    messages = Message.__table__
    free = (select(messages.c.id)
            .where(messages.c.id.in_(bindparam("ids", expanding=True)), messages.c.enqueued_at.is_(None))
            .with_for_update(skip_locked=True))
    return update(messages).where(messages.c.id.in_(free.scalar_subquery())).values(enqueued_at=bindparam("now"))


def _stamp(connection: Connection, ids: list[str]) -> None:
    now = utcnow()
    for i in range(0, len(ids), STAMP_CHUNK):
        connection.execute(_stamp_statement(), {"ids": ids[i:i + STAMP_CHUNK], "now": now})


class SpoolError(RuntimeError):
    """The database did not take the message: the client must get 451, never 250."""
