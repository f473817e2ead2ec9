"""Queueing a system message: the rows of a queued message (one delivery of kind SYSTEM_KIND), inserted in
the caller's transaction, and the RQ job once it has committed."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.exceptions import RedisError
from sqlalchemy import Connection, insert

from mailferry.db import Database
from mailferry.logs import log
from mailferry.models import Delivery, Message, utcnow
from mailferry.queue import enqueue_messages, get_queue, make_redis
from mailferry.settings import Settings

from .compose import SystemMessage, compose

SYSTEM_KIND = "system"  # Delivery.kind: our own message; no SRS, never bounced (dsn_block), not counted as forwarded
DSN_BLOCK = "system message"
logger = logging.getLogger("mailferry.system_mail")


def queue_system_message(conn: Connection, settings: Settings, message: SystemMessage,
                         domain_id: int | None = None) -> str:
    """Insert the message in `conn`'s transaction; its id. Call dispatch() with it after the commit (or leave
    it to the reconciler). `domain_id`: the domain it is about, so its owner sees it in the message log."""
    from smtp.routes import Route, message_rows  # smtp.routes imports the models: keep this module light
    from smtp.spool import new_message_id

    message_id = new_message_id()
    raw = compose(message, settings, message_id=message_id, now=utcnow())
    route = Route(recipient=message.to, destinations=(message.to,), kind=SYSTEM_KIND, domain_id=domain_id)
    row, deliveries = message_rows(message_id, mail_from=settings.system_mail_from[1], routes=[route], raw=raw,
                                   peer="127.0.0.1", helo=settings.SMTP_HOSTNAME,
                                   findings={"dsn_block": DSN_BLOCK})
    conn.execute(insert(Message.__table__), row)
    conn.execute(insert(Delivery.__table__), deliveries)
    log(logger, logging.INFO, "system message queued", message_id=message_id, kind=message.kind, to=message.to)
    return message_id


def dispatch(settings: Settings, message_ids: Iterable[str]) -> None:
    """Enqueue delivery jobs for committed system messages. Redis down is not an error: the reconciler
    enqueues every due message within RECONCILE_INTERVAL."""
    ids = list(message_ids)
    if not ids:
        return
    redis = make_redis(settings.REDIS_URL)
    try:
        enqueue_messages(get_queue(redis, settings.RQ_QUEUE), ids)
    except RedisError as exc:
        log(logger, logging.WARNING, "enqueue failed, the reconciler will", message_id=ids[0], error=str(exc))
    finally:
        redis.close()


def send_system_message(db: Database, settings: Settings, message: SystemMessage,
                        domain_id: int | None = None) -> str:
    """Queue, commit and dispatch one system message in a transaction of its own; its id."""
    with db.engine.begin() as conn:
        message_id = queue_system_message(conn, settings, message, domain_id)
    dispatch(settings, [message_id])
    return message_id
