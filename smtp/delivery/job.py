"""The RQ job (`mailferry.queue.DELIVER_JOB`): deliver one message to every destination that is due.

A destination that accepted is committed DELIVERED before the next transaction is sent, so a crash never
re-sends it; after the last transaction nothing more is sent, so its outcomes, the deferred and bounced
destinations, the message's own state and its DSN are all written in one settling transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime

from redis.exceptions import RedisError

from mailferry.logs import log
from mailferry.models import utcnow
from mailferry.models.message import DELIVERED
from mailferry.queue import enqueue_messages

from . import bounces, context, lease, router
from .batch import HeldSlots, take_waiting
from .load import snapshots
from .outcome import classify
from .recommit import until_committed
from .record import Attempt, Target
from .senders import Snapshot
from .settle import counted, record_delivered, settle
from .tally import Tally

logger = logging.getLogger(__name__)


def deliver_message(message_id: str) -> None:
    """The job: this message and up to DELIVERY_BATCH - 1 whose jobs wait behind it (smtp/delivery/batch.py)."""
    ctx = context.current()
    try:
        extra = _fill_batch(ctx, ctx.settings.DELIVERY_BATCH - 1)
    except RedisError as exc:  # deliver this one; the others' jobs stay where they are
        log(logger, logging.WARNING, "could not take waiting jobs", message_id=message_id, error=str(exc))
        extra = []
    if not extra:
        when = run(ctx, message_id)
        if when is not None:
            ctx.followups[message_id] = when
        return
    run_batch(ctx, [message_id, *extra])


def _fill_batch(ctx: context.Context, room: int) -> list[str]:
    """Jobs waiting behind this one, up to `room`. Under a steady trickle the queue is shallow and each job
    would carry one message and its whole fixed cost (RQ, claim, load, counters): when under a quarter of
    the room is filled, wait DELIVERY_BATCH_WAIT_MS once for more (measured on PostgreSQL at ~250 msg/s:
    paced end-to-end p95 0.5-1.0 s without the wait, ~0.2 s with 20 ms)."""
    taken = take_waiting(ctx.queue, room)
    wait = ctx.settings.DELIVERY_BATCH_WAIT_MS / 1000
    if wait > 0 and len(taken) < room // 4:
        time.sleep(wait)
        taken += take_waiting(ctx.queue, room - len(taken))
    return taken


def run(ctx: context.Context, message_id: str) -> datetime | None:
    """One delivery pass; returns when the message is due again, if it is not done."""
    snaps, waiting, claimed_at = _claim(ctx, [message_id])
    if message_id not in snaps:
        return waiting.get(message_id)
    held = lease.Holder(ctx.db, message_id, ctx.worker_id, ctx.settings.DELIVERY_LEASE).claimed(claimed_at)
    return _deliver(ctx, snaps[message_id], held)


def _claim(ctx: context.Context, message_ids: list[str]) -> tuple[dict[str, Snapshot], dict[str, datetime], float]:
    """One claim and one load for these messages: the snapshots of those claimed, when each one not claimable
    now becomes due (if it is merely early), and the time.monotonic() taken before the claim, from which each
    lease is renewed, or found lost, in time."""
    claimed_at = time.monotonic()
    waiting: dict[str, datetime] = {}
    with ctx.db.engine.begin() as conn:
        claimed = lease.claim_many(conn, message_ids, ctx.worker_id, ctx.settings.DELIVERY_LEASE)
        snaps = snapshots(conn, claimed)
        for message_id in message_ids:
            if message_id not in snaps:
                log(logger, logging.DEBUG, "not claimable now", message_id=message_id)
                if (when := lease.waiting_until(conn, message_id)) is not None:
                    waiting[message_id] = when
    return snaps, waiting, claimed_at


def run_batch(ctx: context.Context, message_ids: list[str]) -> None:
    """One delivery pass over several messages: one claim and one load for all of them, then each delivered
    and settled on its own, grouped by destination domain so consecutive messages reuse one connection.
    When each is due again goes to ctx.followups; a failure in one message does not stop the others (its
    lease expires and the reconciler retries it) and is raised once the batch is done."""
    snaps, waiting, claimed_at = _claim(ctx, message_ids)
    ctx.followups.update(waiting)
    log(logger, logging.DEBUG, "batch claimed", message_id=message_ids[0], claimed=len(snaps),
        taken=len(message_ids))
    error: Exception | None = None
    slots, tally = HeldSlots(ctx.limiter), Tally()
    bctx = replace(ctx, limiter=slots)  # the same context, but a domain's limiter slot is kept for the batch
    try:
        for snap in sorted(snaps.values(), key=_first_domain):
            held = lease.Holder(ctx.db, snap.id, ctx.worker_id, ctx.settings.DELIVERY_LEASE).claimed(claimed_at)
            try:
                when = _deliver(bctx, snap, held, tally)
            except Exception as exc:  # noqa: BLE001 - the rest of the batch is still owed; raised below
                logger.exception("delivery pass failed", extra={"message_id": snap.id})
                error = error or exc
                continue
            if when is not None:
                ctx.followups[snap.id] = when
    finally:
        slots.close()
        _write_tally(ctx, tally, message_ids[0])
    if error is not None:
        raise error


def _write_tally(ctx: context.Context, tally: Tally, message_id: str) -> None:
    if not tally:
        return
    try:
        with ctx.db.engine.begin() as conn:
            tally.write(conn)
    except Exception:  # noqa: BLE001 - counters only: the deliveries are committed
        logger.exception("could not write the batch's counters", extra={"message_id": message_id})


def _deliver(ctx: context.Context, snap: Snapshot, held: lease.Holder, tally: Tally | None = None) -> datetime | None:
    message_id = snap.id
    unsettled = [bounces.held(t) for t in snap.targets if t.suspended]  # nothing is sent to those
    for attempt in unsettled:
        _log_attempt(snap, attempt)
    recorded: set[int] = set()  # targets committed delivered before the settle
    groups = list(_by_domain(tuple(t for t in snap.targets if not t.suspended)).items())
    for i, (domain, targets) in enumerate(groups):
        if not held.keep():
            log(logger, logging.WARNING, "lease lost, leaving the message to its new owner", message_id=message_id)
            return None
        for attempts, final in router.deliver_domain(ctx, snap, domain, targets):
            for attempt in attempts:
                _log_attempt(snap, attempt)
            delivered = [a for a in attempts if classify(a.reply) == DELIVERED]
            unsettled += [a for a in attempts if classify(a.reply) != DELIVERED]
            if final and i == len(groups) - 1:
                unsettled += delivered  # nothing is sent before the settling commit: record them there
            elif delivered:
                _commit_delivered(ctx, delivered, held, tally, snap.received_at)  # before the next transaction is sent
                recorded.update(a.target.id for a in delivered)
    return _settle(ctx, snap, unsettled, recorded, held, tally)


def _first_domain(snap: Snapshot) -> str:
    return snap.targets[0].destination_domain.lower() if snap.targets else ""


def _by_domain(targets: tuple[Target, ...]) -> dict[str, list[Target]]:
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.destination_domain.lower(), []).append(target)
    return groups


def _commit_delivered(ctx: context.Context, attempts: list[Attempt], held: lease.Holder, tally: Tally | None,
                      received_at: datetime) -> None:
    def commit() -> None:
        with counted(ctx.db.engine, tally, received_at) as (conn, counts):
            record_delivered(conn, attempts, now=utcnow(), counts=counts)
            held.keep(conn)

    until_committed(commit, held, "delivered")


def _settle(ctx: context.Context, snap: Snapshot, attempts: list[Attempt], recorded: set[int], held: lease.Holder,
            tally: Tally | None = None) -> datetime | None:
    settled = until_committed(lambda: settle(ctx.db.engine, snap, attempts, recorded, owner=ctx.worker_id,
                                             settings=ctx.settings, tally=tally), held, "settle")
    if settled is None:
        log(logger, logging.WARNING, "lease lost before settling", message_id=snap.id)
        return None
    if settled.dsn_id is not None:
        log(logger, logging.INFO, "bounce queued", message_id=snap.id, dsn_id=settled.dsn_id, failed=settled.failed)
        _enqueue(ctx, settled.dsn_id)
    for notice_id in settled.notices:
        log(logger, logging.INFO, "notice queued", message_id=snap.id, notice_id=notice_id)
        _enqueue(ctx, notice_id)
    log(logger, logging.INFO, "delivery pass done", message_id=snap.id, next_attempt_at=settled.next_attempt_at)
    return settled.next_attempt_at


def _enqueue(ctx: context.Context, message_id: str) -> None:
    try:
        enqueue_messages(ctx.queue, [message_id])
    except RedisError as exc:  # it is committed; the reconciler enqueues it
        log(logger, logging.WARNING, "enqueue failed", message_id=message_id, error=str(exc))


def _log_attempt(snap: Snapshot, attempt: Attempt) -> None:
    log(logger, logging.INFO, "attempt", message_id=snap.id, destination=attempt.target.destination,
        outcome=classify(attempt.reply), code=attempt.reply.code, reply=attempt.reply.text[:300],
        route=attempt.via, tls=attempt.tls, dkim=attempt.dkim_signed)

