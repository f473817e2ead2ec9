"""Engine and session factory built from a URL; nothing connects at import time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(synchronous: str):
    """The connect hook of a SQLite engine. In WAL mode synchronous=FULL fsyncs the WAL at every COMMIT, so a
    commit survives a power cut or kernel crash (RFC 5321 6.1: the 250 promises that); NORMAL fsyncs only at
    checkpoints: it survives a crash of our process, not of the machine."""

    def connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the spooling writer
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return connect


PING_AFTER_IDLE = 5.0  # seconds a pooled connection may sit unused before it is pinged at checkout


def _ping_when_idle(engine: Engine, idle: float = PING_AFTER_IDLE) -> None:
    """pool_pre_ping, but only for a connection that sat in the pool `idle` seconds or more.

    pool_pre_ping costs a round trip on every checkout (two per delivered message in a worker, one per
    spool batch); a connection checked in a moment ago is not stale. One that failed its ping is
    replaced by the pool (DisconnectionError), as pool_pre_ping does."""

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def make_engine(url: str, durable_commits: bool = True, **kwargs) -> Engine:
    """durable_commits=False: COMMIT returns before its WAL is flushed (PostgreSQL: synchronous_commit=off;
    SQLite: synchronous=NORMAL). A crash of the database server or of the machine, not of our process, can
    then forget the last commits, atomically and consistently; for the workers that means a few deliveries
    made again, never a message lost. The spool never uses it: a 250 promises a durable commit."""
    if url.startswith("sqlite:"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas("FULL" if durable_commits else "NORMAL"))
        return engine
    if not durable_commits:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "options": "-c synchronous_commit=off"}
    engine = create_engine(url, pool_size=10, max_overflow=20, **kwargs)
    _ping_when_idle(engine)
    return engine


class Database:
    """One engine and its session factory; create one per process from settings.DATABASE_URL."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
