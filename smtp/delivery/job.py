"""The RQ job (`mailferry.queue.DELIVER_JOB`): deliver one message to every destination that is due.

A destination that accepted is committed DELIVERED before the next transaction is sent, so a crash never
re-sends it; after the last transaction nothing more is sent, so its outcomes, the deferred and bounced
destinations, the message's own state and its DSN are all written in one settling transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import srslib
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from mailferry.logs import log
from mailferry.models import Message, utcnow
from mailferry.models.message import DEFERRED, DELIVERED, PENDING
from mailferry.queue import enqueue_messages
from smtp.routes import FORWARD, domain_of

from . import context, lease
from .dsn import DSN_KIND, OriginalMessage, dsn_message
from .mx import MxError
from .outcome import Reply, classify
from .record import Attempt, Target, finish, locked_message, record_attempt
from .transform import Outbound, crlf_only, forward, loop_header, received_header
from .transport import Transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    id: str
    mail_from: str
    raw: bytes
    received_at: datetime
    helo: str
    peer: str
    used_tls: bool
    targets: tuple[Target, ...]

    @property
    def original(self) -> OriginalMessage:
        return OriginalMessage(self.id, self.mail_from, self.raw, self.received_at)


def deliver_message(message_id: str) -> None:
    ctx = context.current()
    when = run(ctx, message_id)
    if when is not None:
        ctx.followups[message_id] = when


def run(ctx: context.Context, message_id: str) -> datetime | None:
    """One delivery pass; returns when the message is due again, if it is not done."""
    held = lease.Holder(ctx.db, message_id, ctx.worker_id, ctx.settings.DELIVERY_LEASE)
    with ctx.db.session() as s:
        if not held.claim(s):
            log(logger, logging.DEBUG, "not claimable now", message_id=message_id)
            return lease.waiting_until(s, message_id)
        snap = _load(s, message_id)
    unsettled: list[Attempt] = []
    groups = list(_by_domain(snap.targets).items())
    for i, (domain, targets) in enumerate(groups):
        if not held.keep():
            log(logger, logging.WARNING, "lease lost, leaving the message to its new owner", message_id=message_id)
            return None
        for attempts, final in _deliver_domain(ctx, snap, domain, targets):
            for attempt in attempts:
                _log_attempt(snap, attempt)
            delivered = [a for a in attempts if classify(a.reply) == DELIVERED]
            unsettled += [a for a in attempts if classify(a.reply) != DELIVERED]
            if final and i == len(groups) - 1:
                unsettled += delivered  # nothing is sent before the settling commit: record them there
            elif delivered:
                _commit_delivered(ctx, snap, delivered, held)  # before the next transaction is sent
    return _settle(ctx, snap, unsettled)


def _load(s: Session, message_id: str) -> Snapshot:
    now = utcnow()
    m = s.get(Message, message_id)
    targets = tuple(
        Target(d.id, d.recipient, d.destination, d.destination_domain, d.kind, d.domain_id, d.alias_id)
        for d in m.deliveries
        if d.state in (PENDING, DEFERRED) and (d.next_attempt_at is None or d.next_attempt_at <= now)
    )
    return Snapshot(m.id, m.mail_from, m.raw, m.received_at, m.helo, m.peer, m.used_tls, targets)


def _by_domain(targets: tuple[Target, ...]) -> dict[str, list[Target]]:
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.destination_domain.lower(), []).append(target)
    return groups


def _envelope_from(ctx: context.Context, mail_from: str, alias_domain: str) -> str:
    try:
        return ctx.srs.forward(mail_from, alias_domain)
    except (srslib.Error, ValueError):  # a sender SRS cannot wrap: pass it through unchanged
        return mail_from


def _outbound(ctx: context.Context, snap: Snapshot, kind: str, alias_domain: str, members: list[Target]) -> Outbound:
    if kind == DSN_KIND:  # our own bounce: null sender, nothing to add
        return Outbound("", crlf_only(snap.raw), False)
    received = received_header(
        helo=snap.helo, peer=snap.peer, hostname=ctx.settings.SMTP_HOSTNAME, message_id=snap.id,
        used_tls=snap.used_tls, received_at=snap.received_at,
        recipient=members[0].recipient if len(members) == 1 else None,
    )
    if kind == FORWARD:
        received += b"".join(loop_header(a) for a in dict.fromkeys(m.recipient.lower() for m in members))
    envelope = _envelope_from(ctx, snap.mail_from, alias_domain)
    return forward(snap.raw, envelope_from=envelope, received=received, key=ctx.keys.get(alias_domain))


def _transactions(ctx: context.Context, snap: Snapshot, targets: list[Target]) -> list[Transaction]:
    """One transaction per (kind, alias domain): each has its own SRS envelope and DKIM signature."""
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.kind, domain_of(target.recipient)), []).append(target)
    transactions = []
    for (kind, alias_domain), members in groups.items():
        out = _outbound(ctx, snap, kind, alias_domain, members)
        transactions.append(Transaction(out.envelope_from, [m.destination for m in members], out.data,
                                        tag=(members, out.dkim_signed)))
    return transactions


def _deliver_domain(ctx: context.Context, snap: Snapshot, domain: str,
                    targets: list[Target]) -> Iterator[tuple[list[Attempt], bool]]:
    """Per transaction: its attempts, and whether it was the last one sent for this domain."""
    try:
        hosts = ctx.mx.lookup(domain)
    except MxError as exc:
        yield [Attempt(target, Reply(exc.code, exc.text)) for target in targets], True
        return
    for result in ctx.transport.send(hosts, _transactions(ctx, snap, targets)):
        members, signed = result.transaction.tag
        yield [Attempt(t, result.replies[t.destination], result.mx_host, result.tls, signed) for t in members], \
            result.final


def _commit_delivered(ctx: context.Context, snap: Snapshot, attempts: list[Attempt], held: lease.Holder) -> None:
    with ctx.db.session() as s:
        for attempt in attempts:
            record_attempt(s, attempt, now=utcnow(), received_at=snap.received_at, settings=ctx.settings)
        held.keep(s)


def _settle(ctx: context.Context, snap: Snapshot, attempts: list[Attempt]) -> datetime | None:
    now = utcnow()
    dsn = None
    with ctx.db.session() as s:
        message = locked_message(s, snap.id, ctx.worker_id)
        if message is None:  # what was delivered stays delivered; the rest is the new owner's
            log(logger, logging.WARNING, "lease lost before settling", message_id=snap.id)
            for attempt in attempts:
                if classify(attempt.reply) == DELIVERED:
                    record_attempt(s, attempt, now=now, received_at=snap.received_at, settings=ctx.settings)
            return None
        failures = [f for a in attempts
                    if (f := record_attempt(s, a, now=now, received_at=snap.received_at, settings=ctx.settings))]
        if failures and snap.mail_from:  # never bounce a bounce: those have a null sender
            domain_id = next((a.target.domain_id for a in attempts if a.target.domain_id), None)
            dsn = dsn_message(snap.original, failures, hostname=ctx.settings.SMTP_HOSTNAME, now=now,
                              domain_id=domain_id)
            s.add(dsn)
        when = finish(message, now)
    if dsn is not None:
        log(logger, logging.INFO, "bounce queued", message_id=snap.id, dsn_id=dsn.id, failed=len(failures))
        _enqueue(ctx, dsn.id)
    log(logger, logging.INFO, "delivery pass done", message_id=snap.id, next_attempt_at=when)
    return when


def _enqueue(ctx: context.Context, message_id: str) -> None:
    try:
        enqueue_messages(ctx.queue, [message_id])
    except RedisError as exc:  # it is committed; the reconciler enqueues it
        log(logger, logging.WARNING, "enqueue failed", message_id=message_id, error=str(exc))


def _log_attempt(snap: Snapshot, attempt: Attempt) -> None:
    log(logger, logging.INFO, "attempt", message_id=snap.id, destination=attempt.target.destination,
        outcome=classify(attempt.reply), code=attempt.reply.code, reply=attempt.reply.text[:300],
        mx=attempt.mx_host, tls=attempt.tls, dkim=attempt.dkim_signed)

