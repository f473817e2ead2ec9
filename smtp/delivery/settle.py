"""Settling a message after its delivery pass, in one transaction written with Core: its deliveries' outcomes
and attempts, its DSN, its next time or its end, and the release of its lease.

The message row is written first and only while we hold its lease (`lease_owner` in the WHERE, the rowcount is
the check). That UPDATE also takes the row lock the SELECT ... FOR UPDATE used to take, before any delivery is
written, so no other worker claims the message until the outcomes are committed; on SQLite it opens the write
transaction, which makes the check and the writes one step there too.

When the pass saw every open delivery of the message and has an outcome for each, the message's next time
follows from those outcomes: three statements (message, deliveries, attempts). Each delivery is written only
if it is still as the pass loaded it (not final, same attempt count); if one moved meanwhile (made final by a
worker whose lease we outlived, or given up from the dashboard), that transaction is rolled back and the
message settled from its deliveries as the database holds them, the way a message with open deliveries
outside the pass is always settled.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from mailferry.logs import get_logger, log
from mailferry.models import Delivery, Message, utcnow
from mailferry.models.message import DEFERRED, DELIVERED, DONE, FINAL_DELIVERY_STATES
from mailferry.settings import Settings

from .bounces import record_bounces, reset_streaks
from .dsn import DSN_KIND, dsn_rows
from .observe import report
from .outcome import classify
from .record import Attempt, Outcome, outcome, write_outcomes
from .senders import Snapshot
from .tally import Tally

logger = get_logger("smtp.delivery.settle")
_messages, _deliveries = Message.__table__, Delivery.__table__
# DSNs queued for one sender domain within the last hour (the cap DSN_MAX_PER_SENDER_DOMAIN_PER_HOUR).
_RECENT_DSNS = (select(func.count()).select_from(_messages.join(_deliveries, _messages.c.id == _deliveries.c.message_id))
                .where(_deliveries.c.kind == DSN_KIND, _deliveries.c.destination_domain == bindparam("domain"),
                       _messages.c.received_at >= bindparam("since")))
_OURS = (_messages.c.id == bindparam("message_id")) & (_messages.c.lease_owner == bindparam("owner"))
_RELEASE = dict(attempts=_messages.c.attempts + 1, lease_until=None, lease_owner=None)
_DUE = dict(next_attempt_at=bindparam("when"))
_END = dict(state=DONE, completed_at=bindparam("now"), next_attempt_at=None)
# The lease check and release, with the message's next time or end when the outcomes tell it.
_RELEASE_ONLY = update(_messages).where(_OURS).values(**_RELEASE)
_RELEASE_DUE = update(_messages).where(_OURS).values(**_RELEASE, **_DUE)
_RELEASE_END = update(_messages).where(_OURS).values(**_RELEASE, **_END)
# After _RELEASE_ONLY, once the deliveries tell it (the row is ours: locked, or SQLite's write transaction).
_SET_DUE = update(_messages).where(_messages.c.id == bindparam("message_id")).values(**_DUE)
_SET_END = update(_messages).where(_messages.c.id == bindparam("message_id")).values(**_END)


@dataclass(frozen=True)
class Settled:
    next_attempt_at: datetime | None  # None: every delivery is final, the message is done
    dsn_id: str | None = None
    failed: int = 0
    notices: tuple[str, ...] = ()  # notices to owners (a destination suspended): enqueue them once committed


class _Moved(Exception):
    """A delivery is no longer as the pass loaded it."""


def settle(engine: Engine, snap: Snapshot, attempts: list[Attempt], recorded: Collection[int], *, owner: str,
           settings: Settings, tally: Tally | None = None) -> Settled | None:
    """Settle the pass's `attempts` (`recorded`: targets already committed delivered in this pass). None when the
    lease is no longer ours: then only what was delivered is recorded, the rest is the new owner's. Counters go
    to `tally` once committed, or without one into the same transaction."""
    now = utcnow()
    attempted = [a.target.id for a in attempts]
    if snap.all_open_due and len(set(attempted)) == len(attempted) and \
            {t.id for t in snap.targets} <= set(attempted) | set(recorded):
        try:
            with counted(engine, tally, snap.received_at) as (conn, counts):
                return _settle_known(conn, snap, attempts, owner=owner, now=now, settings=settings, counts=counts)
        except _Moved:
            pass
    with counted(engine, tally, snap.received_at) as (conn, counts):
        return _settle_read(conn, snap, attempts, owner=owner, now=now, settings=settings, counts=counts)


def record_delivered(conn: Connection, attempts: list[Attempt], *, now: datetime, counts: Tally) -> None:
    """Record the delivered ones among `attempts`, lease or not: a delivery that reached its destination is
    never tried again. Deliveries already final are left alone."""
    delivered = [Outcome(a, DELIVERED, a.reply, None, a.target.attempts) for a in attempts
                 if classify(a.reply) == DELIVERED]
    if delivered:
        reset_streaks(conn, write_outcomes(conn, delivered, now=now, counts=counts, check_attempts=False))


@contextmanager
def counted(engine: Engine, tally: Tally | None,
            received_at: datetime | None = None) -> Iterator[tuple[Connection, Tally]]:
    """A transaction and the counters of what it writes: into `tally` once it has committed (a batch's),
    or, without one, written in the transaction itself; to the process's metrics once it has committed
    (`received_at`: the message's arrival, for the delivery latency)."""
    counts = Tally()
    with engine.begin() as conn:
        yield conn, counts
        if tally is None:
            counts.write(conn)
    report(counts.observed, received_at)
    if tally is not None:
        tally.add(counts)


def _settle_known(conn: Connection, snap: Snapshot, attempts: list[Attempt], *, owner: str, now: datetime,
                  settings: Settings, counts: Tally) -> Settled | None:
    outcomes = [outcome(a, attempts_before=a.target.attempts, now=now, received_at=snap.received_at,
                        settings=settings) for a in attempts]
    open_at = [o.next_attempt_at for o in outcomes if o.state == DEFERRED]
    when = min(open_at) if open_at else None
    ours = {"message_id": snap.id, "owner": owner}
    released = conn.execute(_RELEASE_DUE, {**ours, "when": when}) if when is not None else \
        conn.execute(_RELEASE_END, {**ours, "now": now})
    if released.rowcount != 1:
        record_delivered(conn, attempts, now=now, counts=counts)
        return None
    applied = write_outcomes(conn, outcomes, now=now, counts=counts, check_attempts=True)
    if len(applied) != len(outcomes):
        raise _Moved
    return _settled(conn, snap, attempts, applied, when, now, settings)


def _settle_read(conn: Connection, snap: Snapshot, attempts: list[Attempt], *, owner: str, now: datetime,
                 settings: Settings, counts: Tally) -> Settled | None:
    if conn.execute(_RELEASE_ONLY, {"message_id": snap.id, "owner": owner}).rowcount != 1:
        record_delivered(conn, attempts, now=now, counts=counts)
        return None
    rows = conn.execute(select(_deliveries.c.id, _deliveries.c.state, _deliveries.c.attempts,
                               _deliveries.c.next_attempt_at)
                        .where(_deliveries.c.message_id == snap.id).with_for_update()).all()
    current = {r.id: r for r in rows}
    outcomes = [outcome(a, attempts_before=current[a.target.id].attempts, now=now, received_at=snap.received_at,
                        settings=settings)
                for a in attempts
                if a.target.id in current and current[a.target.id].state not in FINAL_DELIVERY_STATES]
    applied = {o.target.id: o for o in write_outcomes(conn, outcomes, now=now, counts=counts, check_attempts=True)}
    open_at = []
    for r in rows:
        o = applied.get(r.id)
        state, at = (o.state, o.next_attempt_at) if o else (r.state, r.next_attempt_at)
        if state not in FINAL_DELIVERY_STATES:
            open_at.append(at or now)
    when = min(open_at) if open_at else None
    if when is not None:
        conn.execute(_SET_DUE, {"message_id": snap.id, "when": when})
    else:
        conn.execute(_SET_END, {"message_id": snap.id, "now": now})
    return _settled(conn, snap, attempts, list(applied.values()), when, now, settings)


def _over_cap(conn: Connection, mail_from: str, now: datetime, settings: Settings) -> str:
    cap = settings.DSN_MAX_PER_SENDER_DOMAIN_PER_HOUR
    domain = mail_from.rpartition("@")[2].lower()
    sent = conn.execute(_RECENT_DSNS, {"domain": domain, "since": now - timedelta(hours=1)}).scalar_one() if cap else 0
    return f"{sent} DSNs to {domain} in the last hour (the cap is {cap})" if sent >= cap else ""


def _settled(conn: Connection, snap: Snapshot, attempts: list[Attempt], applied: list[Outcome],
             when: datetime | None, now: datetime, settings: Settings) -> Settled:
    reset_streaks(conn, applied)
    notices = tuple(record_bounces(conn, applied, message_id=snap.id, now=now, settings=settings))
    failures = [f for o in applied if (f := o.failure)]
    if not failures or not snap.mail_from:  # never bounce a bounce: those have a null sender
        return Settled(when, None, len(failures), notices)
    withheld = snap.dsn_block or _over_cap(conn, snap.mail_from, now, settings)
    if withheld:  # backscatter: the failure stays recorded on its deliveries, nobody is mailed
        log(logger, logging.INFO, "DSN not sent", message_id=snap.id, reason=withheld, failed=len(failures),
            mail_from=snap.mail_from)
        return Settled(when, None, len(failures), notices)
    domain_id = next((a.target.domain_id for a in attempts if a.target.domain_id), None)
    message, deliveries = dsn_rows(snap.original, failures, hostname=settings.SMTP_HOSTNAME, now=now,
                                   domain_id=domain_id)
    conn.execute(insert(_messages), message)
    conn.execute(insert(_deliveries), deliveries)
    return Settled(when, message["id"], len(failures), notices)
