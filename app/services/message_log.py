"""The message log: accepted messages and their per-destination state, scoped to the acting owner;
retry now / give up for deferred ones; the admin's dead-letter list (RQ failed jobs) and requeue.

An owner sees a message when one of its deliveries belongs to one of their domains, and sees only those
deliveries: a message to two owners' aliases shows each owner their own part.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rq.queue import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import and_, exists, func, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailferry.control_chars import first_control_character
from mailferry.logs import log
from mailferry.models import Delivery, DeliveryAttempt, Domain, Message, utcnow
from mailferry.models.message import BOUNCED, DEFERRED, DONE, FINAL_DELIVERY_STATES, PENDING, QUEUED
from mailferry.queue import enqueue_messages, job_id_for
from mailferry.stats import bump_daily
from smtp.routes import FORWARD

from . import audit
from .access import SYSTEM, Actor, sees_everything
from .control_chars import refuse_control_characters
from .errors import FORBIDDEN, INVALID, NOT_FOUND, UNAVAILABLE, ServiceError

logger = logging.getLogger("mailferry.message_log")
GAVE_UP_REPLY = "gave up: delivery cancelled from the dashboard"
DSN_KIND = "dsn"  # Delivery.kind of a bounce we generated (smtp/delivery/dsn.py): never requeued
OPEN_STATES = (PENDING, DEFERRED)
JOB_PREFIX = job_id_for("")


def _visible(actor: Actor, domain_id: int | None = None) -> ColumnElement[bool]:
    """The condition on Delivery for what the actor may see (optionally of one domain)."""
    conditions = []
    if not sees_everything(actor):
        conditions.append(Delivery.domain_id.in_(select(Domain.id).where(Domain.owner_id == actor.id)))
    if domain_id is not None:
        conditions.append(Delivery.domain_id == domain_id)
    return and_(*conditions) if conditions else true()


def list_messages(session: Session, actor: Actor = SYSTEM, domain_id: int | None = None, search: str | None = None,
                  limit: int = 100, before: str | None = None) -> list[Message]:
    """Newest first. `search` matches the sender, the alias address or a destination (substring)."""
    condition = (Delivery.message_id == Message.id) & _visible(actor, domain_id)
    if search:
        term = refuse_control_characters(search.strip().lower(), "q", "the search")
        address = or_(func.lower(Delivery.recipient).contains(term, autoescape=True),
                      func.lower(Delivery.destination).contains(term, autoescape=True))
        sender = func.lower(Message.mail_from).contains(term, autoescape=True)
        query = select(Message).where(or_(exists().where(condition & address), sender & exists().where(condition)))
    else:
        query = select(Message).where(exists().where(condition))
    return list(session.scalars(query.order_by(Message.received_at.desc(), Message.id).limit(limit)))


def get_message(session: Session, message_id: str, actor: Actor = SYSTEM) -> Message:
    if first_control_character(message_id):  # no id has one, and PostgreSQL cannot even compare a NUL
        raise ServiceError(NOT_FOUND, f"no message {message_id!r}", "message")
    message = session.scalar(select(Message).where(
        Message.id == message_id, exists().where((Delivery.message_id == Message.id) & _visible(actor))))
    if message is None:
        raise ServiceError(NOT_FOUND, f"no message {message_id}", "message")
    return message


def deliveries(session: Session, message: Message, actor: Actor = SYSTEM, domain_id: int | None = None) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.message_id == message.id, _visible(actor, domain_id))
                                .order_by(Delivery.id)))


def deliveries_of(session: Session, messages: list[Message], actor: Actor = SYSTEM,
                  domain_id: int | None = None) -> dict[str, list[Delivery]]:
    """The visible deliveries of many messages in one query: {message id: [Delivery, ...]}."""
    grouped: dict[str, list[Delivery]] = {m.id: [] for m in messages}
    if messages:
        rows = session.scalars(select(Delivery).where(Delivery.message_id.in_(list(grouped)),
                                                      _visible(actor, domain_id)).order_by(Delivery.id))
        for delivery in rows:
            grouped[delivery.message_id].append(delivery)
    return grouped


def attempts(session: Session, delivery_ids: list[int]) -> dict[int, list[DeliveryAttempt]]:
    rows = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(delivery_ids))
                           .order_by(DeliveryAttempt.at, DeliveryAttempt.id)) if delivery_ids else []
    grouped: dict[int, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    for row in rows:
        grouped[row.delivery_id].append(row)
    return grouped


def _open(session: Session, message: Message, actor: Actor) -> list[Delivery]:
    open_ = [d for d in deliveries(session, message, actor) if d.state in OPEN_STATES]
    if message.state != QUEUED or not open_:
        raise ServiceError(INVALID, f"message {message.id} has nothing left to deliver", "message")
    return open_


def retry_now(session: Session, message: Message, actor: Actor = SYSTEM) -> list[int]:
    """Make the actor's open deliveries due now. The caller enqueues after commit (see dispatch_now)."""
    now = utcnow()
    open_ = _open(session, message, actor)
    for delivery in open_:
        delivery.next_attempt_at = now
    message.next_attempt_at = now
    session.flush()
    audit.record_message_event(session, audit.MESSAGE_RETRIED, actor=actor, message_id=message.id, deliveries=open_,
                               summary=f"retry now: message {message.id}")
    log(logger, logging.INFO, "retry requested", message_id=message.id, deliveries=[d.id for d in open_])
    return [d.id for d in open_]


def give_up(session: Session, message: Message, actor: Actor = SYSTEM) -> list[int]:
    """Stop retrying the actor's open deliveries: they become bounced without a DSN (the owner chose this)."""
    now = utcnow()
    open_ = _open(session, message, actor)
    for delivery in open_:
        delivery.state = BOUNCED
        delivery.next_attempt_at = None
        delivery.last_reply = GAVE_UP_REPLY
        if delivery.kind == FORWARD:  # counted like any copy that ended unsent (our own mail is not counted)
            bump_daily(session, delivery.domain_id, bounced=1)
    session.flush()
    if all(d.state in FINAL_DELIVERY_STATES for d in session.scalars(select(Delivery).where(
            Delivery.message_id == message.id))):
        message.state = DONE
        message.next_attempt_at = None
        message.completed_at = now
    session.flush()
    audit.record_message_event(session, audit.MESSAGE_GIVEN_UP, actor=actor, message_id=message.id,
                               deliveries=open_, summary=f"gave up delivering message {message.id}")
    log(logger, logging.INFO, "delivery given up", message_id=message.id, deliveries=[d.id for d in open_])
    return [d.id for d in open_]


def dispatch_now(queue: Queue, message_id: str) -> bool:
    """Enqueue the message's job now, replacing a scheduled retry. False when Redis is down: the message
    is already due in the database, so the worker's reconciler picks it up."""
    try:
        ScheduledJobRegistry(queue=queue).remove(job_id_for(message_id))
        enqueue_messages(queue, [message_id])
    except RedisError as exc:
        log(logger, logging.WARNING, "enqueue failed; the reconciler will dispatch it", message_id=message_id,
            error=str(exc))
        return False
    return True


# ---- dead letters (admin) ----

def failed_message_ids(queue: Queue) -> list[str]:
    """Messages whose delivery job crashed (RQ's failed registry), newest first."""
    try:
        job_ids = FailedJobRegistry(queue=queue).get_job_ids(desc=True)
    except RedisError as exc:
        raise ServiceError(UNAVAILABLE, f"Redis is unreachable: {exc}") from None
    return [j[len(JOB_PREFIX):] for j in job_ids if j.startswith(JOB_PREFIX)]


def failed_messages(session: Session, queue: Queue, actor: Actor) -> list[tuple[str, Message | None]]:
    _admin_only(actor)
    ids = failed_message_ids(queue)
    found = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))} if ids else {}
    return [(mid, found.get(mid)) for mid in ids]


def recent_bounces(session: Session, actor: Actor, limit: int = 100) -> list[Delivery]:
    """Forwarded copies that bounced (5xx or lifetime over), newest first; our own DSNs are left out."""
    _admin_only(actor)
    return list(session.scalars(select(Delivery).where(Delivery.state == BOUNCED, Delivery.kind != DSN_KIND)
                                .order_by(Delivery.updated_at.desc(), Delivery.id.desc()).limit(limit)))


def requeue(session: Session, queue: Queue, message_id: str, actor: Actor) -> list[int]:
    """Deliver the message again: bounced copies (not our DSNs) become pending, the message is due now, and its
    job leaves RQ's failed registry. Destinations that took the message are never sent again. The caller
    dispatches after commit; with Redis down the reconciler does."""
    _admin_only(actor)
    message = session.get(Message, message_id)
    if message is None:
        raise ServiceError(NOT_FOUND, f"no message {message_id}", "message")
    now = utcnow()
    _refuse_without_content(message)
    reopened = [d for d in message.deliveries if d.state == BOUNCED and d.kind != DSN_KIND]
    if reopened or message.state == QUEUED:
        _reopen(session, message, now)
    for delivery in reopened:
        delivery.state, delivery.next_attempt_at = PENDING, now
    session.flush()
    audit.record_message_event(session, audit.MESSAGE_REQUEUED, actor=actor, message_id=message.id,
                               deliveries=reopened, summary=f"admin requeued message {message.id}")
    try:
        registry = FailedJobRegistry(queue=queue)
        if job_id_for(message_id) in registry:
            registry.remove(job_id_for(message_id), delete_job=True)
    except RedisError as exc:
        log(logger, logging.WARNING, "could not clear the failed job; the reconciler dispatches the message",
            message_id=message_id, error=str(exc))
    log(logger, logging.INFO, "message requeued by an admin", message_id=message_id,
        deliveries=[d.id for d in reopened], state=message.state)
    return [d.id for d in reopened]


def _refuse_without_content(message: Message) -> None:
    if message.content_deleted_at is not None:
        raise ServiceError(INVALID, f"the content of message {message.id} was deleted on "
                           f"{message.content_deleted_at:%Y-%m-%d} (RETENTION_DAYS): there is nothing left to send",
                           "message")


def _reopen(session: Session, message: Message, now) -> None:
    """Queue the message again, in one UPDATE that checks its content is still there: the retention sweep may
    have emptied it since we read it (its own UPDATE checks the message is still final, so one of them wins)."""
    reopened = session.execute(update(Message).where(Message.id == message.id, Message.content_deleted_at.is_(None))
                               .values(state=QUEUED, completed_at=None, next_attempt_at=now)
                               .execution_options(synchronize_session="fetch"))
    if reopened.rowcount != 1:
        raise ServiceError(INVALID, f"the content of message {message.id} was deleted just now (RETENTION_DAYS): "
                           "there is nothing left to send", "message")


def _admin_only(actor: Actor) -> None:
    if not actor.is_admin:
        raise ServiceError(FORBIDDEN, "only an admin can see the failed queue")


# ---- serialisation ----

def delivery_dict(delivery: Delivery, tries: list[DeliveryAttempt] | None = None) -> dict:
    body = {
        "id": delivery.id, "alias": delivery.recipient, "destination": delivery.destination, "state": delivery.state,
        "attempts": delivery.attempts, "route": delivery.route, "tls": delivery.tls, "last_code": delivery.last_code,
        "last_reply": delivery.last_reply, "next_attempt_at": _iso(delivery.next_attempt_at),
        "delivered_at": _iso(delivery.delivered_at),
    }
    if tries is not None:
        body["history"] = [{"at": _iso(a.at), "route": a.route, "code": a.code, "reply": a.reply, "tls": a.tls,
                            "outcome": a.outcome} for a in tries]
    return body


def message_dict(message: Message, visible: list[Delivery]) -> dict:
    return {"id": message.id, "received_at": _iso(message.received_at), "sender": message.mail_from,
            "subject": message.subject, "size": message.size, "state": message.state,
            "filter_reason": message.filter_reason, "spam_score": message.spam_score,
            "completed_at": _iso(message.completed_at), "content_deleted_at": _iso(message.content_deleted_at),
            "deliveries": [delivery_dict(d) for d in visible]}


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None
