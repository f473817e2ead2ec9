"""Writing outcomes: what an attempt makes of its Delivery, its DeliveryAttempt rows and its counters.

The outcome is computed first (`outcome`), then written with Core (`write_outcomes`): one guarded UPDATE per
set of identical values (one for a message's deliveries in the common case) whose RETURNING says which
deliveries took it, and one INSERT of the attempt rows of those. A delivery already final is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, update

from mailferry.models import Delivery, DeliveryAttempt
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, FINAL_DELIVERY_STATES
from mailferry.settings import Settings
from mailferry.system_mail import SYSTEM_KIND

from .dsn import DSN_KIND, Failure
from .observe import Observed
from .outcome import Reply, classify
from .retry import next_attempt
from .tally import Tally

_deliveries = Delivery.__table__
_APPLY = (
    update(_deliveries)
    .where(_deliveries.c.id.in_(bindparam("ids", expanding=True)),
           _deliveries.c.state.not_in(FINAL_DELIVERY_STATES))
    .values(attempts=_deliveries.c.attempts + 1, state=bindparam("new_state"),
            next_attempt_at=bindparam("new_next_attempt_at"), last_code=bindparam("new_last_code"),
            last_reply=bindparam("new_last_reply"), route=bindparam("new_route"), tls=bindparam("new_tls"),
            updated_at=bindparam("now"), delivered_at=bindparam("new_delivered_at"))
    .returning(_deliveries.c.id, _deliveries.c.kind, _deliveries.c.domain_id, _deliveries.c.alias_id)
)
# Also unchanged since it was read: the retry schedule was computed from that attempt count.
_APPLY_AT = _APPLY.where(_deliveries.c.attempts == bindparam("expected"))
_LOG = insert(DeliveryAttempt.__table__)


@dataclass(frozen=True)
class Target:
    """A due destination, detached from the session that loaded it."""

    id: int
    recipient: str
    destination: str
    destination_domain: str
    kind: str
    domain_id: int | None
    alias_id: int | None
    attempts: int = 0  # the delivery's attempt count when the pass loaded it
    # Its destination's Mailbox as the pass loaded it (forwarded mail only; smtp/delivery/bounces.py).
    mailbox_id: int | None = None
    suspended: bool = False  # not tried: held until the owner re-enables the destination
    unknown_streak: int = 0  # consecutive 5.1.1 replies so far: a delivery resets it


@dataclass(frozen=True)
class Attempt:
    target: Target
    reply: Reply
    mx_host: str = ""
    tls: bool = False
    dkim_signed: bool = False
    route: str = ""  # "mx:<host>" or "relay:<name>"; "" when nothing was contacted
    retry_after: float | None = None  # a deferral by our own limits: try again this soon, off the schedule
    fell_back: tuple["Attempt", ...] = ()  # earlier tries in this pass that handed over to this route (hybrid)

    @property
    def via(self) -> str:
        return self.route or (f"mx:{self.mx_host}" if self.mx_host else "")


@dataclass(frozen=True)
class Outcome:
    """What one attempt makes of its delivery, given the delivery's attempt count before it."""

    attempt: Attempt
    state: str
    reply: Reply
    next_attempt_at: datetime | None
    attempts_before: int

    @property
    def target(self) -> Target:
        return self.attempt.target

    @property
    def failure(self) -> Failure | None:
        if self.state != BOUNCED:
            return None
        return Failure(self.target.recipient, self.target.destination, self.reply, self.attempt.mx_host)


def outcome(attempt: Attempt, *, attempts_before: int, now: datetime, received_at: datetime,
            settings: Settings) -> Outcome:
    """The delivery's new state: deferred ones get the retry schedule's next time (or `retry_after`, a wait of
    our own limits), or bounce once MAX_QUEUE_LIFETIME is over."""
    state, reply, when = classify(attempt.reply), attempt.reply, None
    if state == DEFERRED:
        when = next_attempt(attempts_before + 1, now, received_at, settings.RETRY_SCHEDULE,
                            settings.MAX_QUEUE_LIFETIME)
        if when is None:
            state = BOUNCED
            reply = Reply(reply.code, f"4.4.7 delivery time expired; last error: {reply.text}")
        elif attempt.retry_after is not None:
            when = now + timedelta(seconds=attempt.retry_after)
    return Outcome(attempt, state, reply, when, attempts_before)


def write_outcomes(conn: Connection, outcomes: Iterable[Outcome], *, now: datetime, counts: Tally,
                   check_attempts: bool) -> list[Outcome]:
    """Apply each outcome to its delivery unless that is final already (and, with `check_attempts`, unless its
    attempt count moved from `attempts_before`); log the attempts of those applied and add up their
    counters in `counts`. Returns the outcomes applied."""
    outcomes = list(outcomes)
    groups: dict[tuple, list[int]] = {}
    for o in outcomes:
        groups.setdefault(_values(o, now, check_attempts), []).append(o.target.id)
    stmt = _APPLY_AT if check_attempts else _APPLY
    taken: dict[int, tuple[str, int | None, int | None]] = {}
    for key, ids in groups.items():
        params = dict(key, ids=ids, now=now)
        taken.update((row.id, (row.kind, row.domain_id, row.alias_id)) for row in conn.execute(stmt, params))
    applied = [o for o in outcomes if o.target.id in taken]
    rows = [row for o in applied for row in _attempt_rows(o, now)]
    if rows:
        conn.execute(_LOG, rows)
    for o in applied:
        counts.observed.extend(_observed(o, now))
        kind, domain_id, alias_id = taken[o.target.id]
        if kind not in (DSN_KIND, SYSTEM_KIND):  # our own mail is not forwarded mail
            _count(counts, o, domain_id, alias_id, now)
    return applied


def _values(o: Outcome, now: datetime, check_attempts: bool) -> tuple:
    # An open delivery has no delivered_at: writing None to it leaves it as it was.
    values = (("new_state", o.state), ("new_next_attempt_at", o.next_attempt_at), ("new_last_code", o.reply.code),
              ("new_last_reply", o.reply.text[:2000]), ("new_route", o.attempt.via), ("new_tls", o.attempt.tls),
              ("new_delivered_at", now if o.state == DELIVERED else None))
    if check_attempts:
        values += (("expected", o.attempts_before),)
    return values


def _observed(o: Outcome, now: datetime) -> list[Observed]:
    tries = [Observed(classify(e.reply), e.via, e.dkim_signed, now) for e in o.attempt.fell_back]
    return tries + [Observed(o.state, o.attempt.via, o.attempt.dkim_signed, now)]


def _attempt_rows(o: Outcome, now: datetime) -> list[dict]:
    # The tries this route took over from are logged before it, as the ORM used to insert them.
    rows = [{"delivery_id": o.target.id, "at": now, "route": e.via, "code": e.reply.code,
             "reply": e.reply.text[:2000], "tls": e.tls, "outcome": classify(e.reply)} for e in o.attempt.fell_back]
    rows.append({"delivery_id": o.target.id, "at": now, "route": o.attempt.via, "code": o.reply.code,
                 "reply": o.reply.text[:2000], "tls": o.attempt.tls, "outcome": o.state})
    return rows


def _count(counts: Tally, o: Outcome, domain_id: int | None, alias_id: int | None, now: datetime) -> None:
    delivered, relayed, signed = o.state == DELIVERED, o.attempt.via.startswith("relay:"), o.attempt.dkim_signed
    counts.bump(domain_id, forwarded=int(delivered), direct=int(delivered and not relayed),
                relay=int(delivered and relayed), deferred=int(o.state == DEFERRED), bounced=int(o.state == BOUNCED),
                dkim_signed=int(delivered and signed), dkim_unsigned=int(delivered and not signed))
    if alias_id is not None and o.state in FINAL_DELIVERY_STATES:
        counts.alias_used(alias_id, delivered=delivered, now=now)
