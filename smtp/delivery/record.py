"""Writing outcomes: Delivery state, DeliveryAttempt rows, daily stats and alias counters, the Message's end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from mailferry.models import Alias, Delivery, DeliveryAttempt, Message
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED, DONE, FINAL_DELIVERY_STATES
from mailferry.settings import Settings
from mailferry.stats import bump_daily

from .dsn import DSN_KIND, Failure
from .outcome import Reply, classify
from .retry import next_attempt
from .tally import Tally


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


def record_attempt(session: Session, attempt: Attempt, *, now: datetime, received_at: datetime,
                   settings: Settings, tally: Tally | None = None) -> Failure | None:
    """Apply one attempt to its Delivery; returns a Failure when the destination is now bounced. Its counters
    are written now, or added to `tally` (a batch writes them once at its end)."""
    delivery = session.get(Delivery, attempt.target.id)
    if delivery is None or delivery.state in FINAL_DELIVERY_STATES:
        return None  # already settled (by a worker whose lease we outlived)
    for earlier in attempt.fell_back:  # logged for the message log and stats; the delivery's state is ours
        session.add(DeliveryAttempt(delivery_id=delivery.id, at=now, route=earlier.via, code=earlier.reply.code,
                                    reply=earlier.reply.text[:2000], tls=earlier.tls,
                                    outcome=classify(earlier.reply)))
    state, reply = classify(attempt.reply), attempt.reply
    delivery.attempts += 1
    delivery.next_attempt_at = None
    if state == DEFERRED:
        delivery.next_attempt_at = next_attempt(delivery.attempts, now, received_at, settings.RETRY_SCHEDULE,
                                                settings.MAX_QUEUE_LIFETIME)
        if delivery.next_attempt_at is None:
            state = BOUNCED
            reply = Reply(reply.code, f"4.4.7 delivery time expired; last error: {reply.text}")
        elif attempt.retry_after is not None:
            delivery.next_attempt_at = now + timedelta(seconds=attempt.retry_after)
    route = attempt.via
    delivery.state, delivery.last_code, delivery.last_reply = state, reply.code, reply.text[:2000]
    delivery.route, delivery.tls, delivery.updated_at = route, attempt.tls, now
    if state == DELIVERED:
        delivery.delivered_at = now
    session.add(DeliveryAttempt(delivery_id=delivery.id, at=now, route=route, code=reply.code,
                                reply=reply.text[:2000], tls=attempt.tls, outcome=state))
    if delivery.kind != DSN_KIND:
        _count(session, delivery, state, attempt.dkim_signed, route.startswith("relay:"), now, tally)
    if state == BOUNCED:
        return Failure(delivery.recipient, delivery.destination, reply, attempt.mx_host)
    return None


def _count(session: Session, delivery: Delivery, state: str, signed: bool, relayed: bool, now: datetime,
           tally: Tally | None) -> None:
    delivered = state == DELIVERED
    counts = dict(forwarded=int(delivered), direct=int(delivered and not relayed), relay=int(delivered and relayed),
                  deferred=int(state == DEFERRED), bounced=int(state == BOUNCED),
                  dkim_signed=int(delivered and signed), dkim_unsigned=int(delivered and not signed))
    final = delivery.alias_id is not None and state in FINAL_DELIVERY_STATES
    if tally is not None:
        tally.bump(delivery.domain_id, **counts)
        if final:
            tally.alias_used(delivery.alias_id, delivered=delivered, now=now)
        return
    bump_daily(session, delivery.domain_id, **counts)
    if final:
        session.execute(
            update(Alias).where(Alias.id == delivery.alias_id).values(
                forwarded_count=Alias.forwarded_count + int(delivered),
                bounced_count=Alias.bounced_count + int(not delivered), last_used_at=now,
            )
        )


def locked_message(session: Session, message_id: str, owner: str) -> Message | None:
    """The message, row-locked where the database can, if we still hold its lease."""
    # The deliveries come in the same query (record_attempt and finish use them); only the message row is locked.
    message = session.scalars(select(Message).where(Message.id == message_id).with_for_update(of=Message)
                              .options(joinedload(Message.deliveries))).unique().first()
    return message if message is not None and message.lease_owner == owner else None


def finish(message: Message, now: datetime) -> datetime | None:
    """Release the lease and settle the message; returns when it is due again (None when done)."""
    message.attempts += 1
    message.lease_until = message.lease_owner = None
    open_deliveries = [d for d in message.deliveries if d.state not in FINAL_DELIVERY_STATES]
    if not open_deliveries:
        message.state, message.completed_at, message.next_attempt_at = DONE, now, None
        return None
    message.next_attempt_at = min(d.next_attempt_at or now for d in open_deliveries)
    return message.next_attempt_at
