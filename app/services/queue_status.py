"""Queue figures for the CLI and the admin dashboard: the database (queue of record) and, when reachable, RQ."""

from __future__ import annotations

from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, defer, selectinload

from mailferry.models import Delivery, Message, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE, PENDING, QUEUED
from mailferry.queue import get_queue, make_redis
from mailferry.settings import Settings


def database_status(session: Session, now: datetime | None = None) -> dict:
    now = now or utcnow()
    messages = dict(session.execute(select(Message.state, func.count()).group_by(Message.state)).all())
    deliveries = dict(session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
    queued = Message.state == QUEUED
    due = session.scalar(select(func.count()).where(
        queued, or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
        or_(Message.lease_until.is_(None), Message.lease_until < now)))
    leased = session.scalar(select(func.count()).where(queued, Message.lease_until >= now))
    not_enqueued = session.scalar(select(func.count()).where(queued, Message.enqueued_at.is_(None)))
    oldest = session.scalar(select(func.min(Message.received_at)).where(queued))
    return {
        "messages": {QUEUED: messages.get(QUEUED, 0), DONE: messages.get(DONE, 0)},
        "deliveries": {state: deliveries.get(state, 0) for state in (PENDING, DEFERRED, DELIVERED, BOUNCED)},
        "due": due or 0,
        "deferred": deliveries.get(DEFERRED, 0),
        "leased": leased or 0,
        "not_enqueued": not_enqueued or 0,
        "oldest_queued_at": oldest.isoformat() + "Z" if oldest else None,
        "oldest_queued_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
    }


def rq_status(settings: Settings, redis: Redis | None = None) -> dict:
    """RQ queue length and registries; {"reachable": False, "error": ...} when Redis is down."""
    conn = redis or make_redis(settings.REDIS_URL)
    try:
        queue = get_queue(conn, settings.RQ_QUEUE)
        return {
            "reachable": True,
            "queue": settings.RQ_QUEUE,
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
        }
    except RedisError as exc:
        return {"reachable": False, "queue": settings.RQ_QUEUE, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if redis is None:
            conn.close()


def queue_status(session: Session, settings: Settings, redis: Redis | None = None, recent: int = 0) -> dict:
    status = {**database_status(session), "rq": rq_status(settings, redis)}
    if recent:
        status["recent"] = recent_messages(session, recent)
    return status


def recent_messages(session: Session, limit: int = 20) -> list[dict]:
    """The newest messages with each destination's state, newest first."""
    query = (select(Message).options(defer(Message.raw), selectinload(Message.deliveries))
             .order_by(Message.received_at.desc(), Message.id).limit(limit))
    rows = session.scalars(query)
    return [message_dict(m) for m in rows]


def message_dict(message: Message) -> dict:
    return {
        "id": message.id,
        "received_at": message.received_at.isoformat() + "Z",
        "mail_from": message.mail_from,
        "rcpt_tos": list(message.rcpt_tos or []),
        "size": message.size,
        "state": message.state,
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at.isoformat() + "Z" if message.next_attempt_at else None,
        "deliveries": [
            {"recipient": d.recipient, "destination": d.destination, "state": d.state, "attempts": d.attempts,
             "last_code": d.last_code, "last_reply": d.last_reply, "route": d.route, "tls": d.tls}
            for d in message.deliveries
        ],
    }
