"""Spooling accepted messages: the database commit that must happen before 250, then dispatch through RQ.

One writer thread per process takes every message waiting at that moment and commits them in one
transaction (group commit across concurrent sessions), so the event loop never blocks on the database
and a busy server pays one fsync per batch, not per message. A dispatcher thread then enqueues the
committed ids in one Redis round trip and stamps `enqueued_at`; when Redis is down the messages stay
QUEUED with `enqueued_at` NULL and the worker's reconciler enqueues them later.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from base64 import b32encode
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import update

from mailferry.db import Database
from mailferry.logs import get_logger, log
from mailferry.models import Message, utcnow
from mailferry.queue import enqueue_messages, get_queue, make_redis

from .routes import Route, build_message

logger = get_logger("smtp.spool")
MAX_BATCH = 200
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
    done: Future = field(default_factory=Future)


class Spooler:
    def __init__(self, db: Database, redis_url: str, queue_name: str):
        self.db = db
        self.redis_url = redis_url
        self.queue_name = queue_name
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._committed: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._rq_queue = None

    def start(self) -> None:
        for target, name in ((self._write_loop, "spool-writer"), (self._dispatch_loop, "spool-dispatcher")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish what is queued (commits and dispatch), then end both threads."""
        self._incoming.put(_STOP)
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()

    def submit(self, item: Incoming) -> Future:
        self._incoming.put(item)
        return item.done

    # ---- writer thread ----
    def _write_loop(self) -> None:
        while True:
            batch, stop = self._take(self._incoming)
            if batch:
                committed = self._commit(batch)
                if committed:
                    self._committed.put(committed)
            if stop:
                self._committed.put(_STOP)
                return

    @staticmethod
    def _take(source: queue.SimpleQueue) -> tuple[list, bool]:
        first = source.get()
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

    def _commit(self, batch: list[Incoming]) -> list[str]:
        # A session that went away before its commit cancelled its future: that message is not spooled.
        batch = [item for item in batch if item.done.set_running_or_notify_cancel()]
        if not batch:
            return []
        try:
            self._insert(batch)
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0])
                return []
            # One bad message must not refuse its neighbours: commit them one by one.
            return [item.message_id for item in batch if self._commit_one(item)]
        for item in batch:
            item.done.set_result(item.message_id)
        return [item.message_id for item in batch]

    def _commit_one(self, item: Incoming) -> bool:
        try:
            self._insert([item])
        except Exception:
            self._fail(item)
            return False
        item.done.set_result(item.message_id)
        return True

    def _insert(self, batch: list[Incoming]) -> None:
        with self.db.session() as session:
            session.add_all([
                build_message(item.message_id, mail_from=item.mail_from, routes=item.routes, raw=item.raw,
                              peer=item.peer, helo=item.helo, used_tls=item.used_tls)
                for item in batch
            ])

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
        try:
            with self.db.session() as session:
                session.execute(
                    update(Message).where(Message.id.in_(ids), Message.enqueued_at.is_(None))
                    .values(enqueued_at=utcnow())
                )
        except Exception as exc:
            log(logger, logging.WARNING, "could not stamp enqueued_at", error=type(exc).__name__, count=len(ids))
        for mid in ids:
            log(logger, logging.DEBUG, "enqueued", message_id=mid)


class SpoolError(RuntimeError):
    """The database did not take the message: the client must get 451, never 250."""
