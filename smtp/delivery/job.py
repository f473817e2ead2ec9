"""The RQ job (`mailferry.queue.DELIVER_JOB`): deliver one message to every destination that is due.

Delivered destinations are committed right after their transaction, so a crash never re-sends them;
deferred and bounced ones are settled with the message (and its DSN) in one final transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import srslib
from redis.exceptions import RedisError

from mailferry.dkim_keys import SigningKey, signing_key
from mailferry.logs import log
from mailferry.models import Message, utcnow
from mailferry.models.message import DEFERRED, DELIVERED, PENDING
from mailferry.queue import enqueue_messages
from smtp.routes import domain_of

from . import context, lease
from .dsn import DSN_KIND, OriginalMessage, dsn_message
from .mx import MxError
from .outcome import Reply, classify
from .record import Attempt, Target, finish, locked_message, record_attempt
from .transform import Outbound, crlf_only, forward, received_header
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
    if not lease.claim(ctx.db, message_id, ctx.worker_id, ctx.settings.DELIVERY_LEASE):
        log(logger, logging.DEBUG, "not claimable now", message_id=message_id)
        return lease.waiting_until(ctx.db, message_id)
    snap = _load(ctx, message_id)
    keys = _Keys(ctx)
    unsettled: list[Attempt] = []
    for domain, targets in _by_domain(snap.targets).items():
        if not lease.renew(ctx.db, message_id, ctx.worker_id, ctx.settings.DELIVERY_LEASE):
            log(logger, logging.WARNING, "lease lost, leaving the message to its new owner", message_id=message_id)
            return None
        for attempt in _deliver_domain(ctx, snap, domain, targets, keys):
            _log_attempt(snap, attempt)
            if classify(attempt.reply) == DELIVERED:
                _commit_delivered(ctx, snap, attempt)
            else:
                unsettled.append(attempt)
    return _settle(ctx, snap, unsettled)


def _load(ctx: context.Context, message_id: str) -> Snapshot:
    now = utcnow()
    with ctx.db.session() as s:
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


class _Keys:
    """Signing keys of alias domains, read (and decrypted) once per job."""

    def __init__(self, ctx: context.Context):
        self.ctx = ctx
        self.cache: dict[str, SigningKey | None] = {}

    def get(self, domain: str) -> SigningKey | None:
        if not self.ctx.settings.SMTP_ENABLE_DKIM:
            return None
        if domain not in self.cache:
            try:
                with self.ctx.db.session() as s:
                    self.cache[domain] = signing_key(s, domain, self.ctx.settings.SECRET_KEY)
            except ValueError as exc:  # SECRET_KEY changed since the key was stored
                log(logger, logging.ERROR, "DKIM key unusable, sending unsigned", domain=domain, error=str(exc))
                self.cache[domain] = None
        return self.cache[domain]


def _envelope_from(ctx: context.Context, mail_from: str, alias_domain: str) -> str:
    try:
        return ctx.srs.forward(mail_from, alias_domain)
    except (srslib.Error, ValueError):  # a sender SRS cannot wrap: pass it through unchanged
        return mail_from


def _outbound(ctx: context.Context, snap: Snapshot, kind: str, alias_domain: str, members: list[Target],
              keys: _Keys) -> Outbound:
    if kind == DSN_KIND:  # our own bounce: null sender, nothing to add
        return Outbound("", crlf_only(snap.raw), False)
    received = received_header(
        helo=snap.helo, peer=snap.peer, hostname=ctx.settings.SMTP_HOSTNAME, message_id=snap.id,
        used_tls=snap.used_tls, received_at=snap.received_at,
        recipient=members[0].recipient if len(members) == 1 else None,
    )
    envelope = _envelope_from(ctx, snap.mail_from, alias_domain)
    return forward(snap.raw, envelope_from=envelope, received=received, key=keys.get(alias_domain))


def _transactions(ctx: context.Context, snap: Snapshot, targets: list[Target], keys: _Keys) -> list[Transaction]:
    """One transaction per (kind, alias domain): each has its own SRS envelope and DKIM signature."""
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.kind, domain_of(target.recipient)), []).append(target)
    transactions = []
    for (kind, alias_domain), members in groups.items():
        out = _outbound(ctx, snap, kind, alias_domain, members, keys)
        transactions.append(Transaction(out.envelope_from, [m.destination for m in members], out.data,
                                        tag=(members, out.dkim_signed)))
    return transactions


def _deliver_domain(ctx: context.Context, snap: Snapshot, domain: str, targets: list[Target],
                    keys: _Keys) -> Iterator[Attempt]:
    try:
        hosts = ctx.mx.lookup(domain)
    except MxError as exc:
        for target in targets:
            yield Attempt(target, Reply(exc.code, exc.text))
        return
    for result in ctx.transport.send(hosts, _transactions(ctx, snap, targets, keys)):
        members, signed = result.transaction.tag
        for target in members:
            yield Attempt(target, result.replies[target.destination], result.mx_host, result.tls, signed)


def _commit_delivered(ctx: context.Context, snap: Snapshot, attempt: Attempt) -> None:
    now = utcnow()
    with ctx.db.session() as s:
        record_attempt(s, attempt, now=now, received_at=snap.received_at, settings=ctx.settings)
    lease.renew(ctx.db, snap.id, ctx.worker_id, ctx.settings.DELIVERY_LEASE)


def _settle(ctx: context.Context, snap: Snapshot, attempts: list[Attempt]) -> datetime | None:
    now = utcnow()
    dsn = None
    with ctx.db.session() as s:
        message = locked_message(s, snap.id, ctx.worker_id)
        if message is None:
            log(logger, logging.WARNING, "lease lost before settling", message_id=snap.id)
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

