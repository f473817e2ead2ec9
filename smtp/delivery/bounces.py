"""Bounces per destination (Mailbox), counted in the settling transaction: a destination that keeps refusing
mail is suspended and its owner told once, with a one-click re-enable link.

Written with the outcomes they come from, so a crash neither loses a count nor counts one twice (a settle that
is retried applies each outcome once). Nothing here costs a statement when nothing bounced: the Mailbox (its
id, suspension and 5.1.1 streak) comes with the pass's load (smtp/delivery/load.py), and a delivered
destination's streak is reset only when it is not zero already.

What counts: a permanent reply to forwarded mail from the destination's side (5xx, or DNS saying its domain
does not exist). What does not: the queue lifetime running out (4.4.7), since the destination refused nothing
and an outage of ours (network, DNS, a 4xx block of our IP) would suspend every destination at once; and a 5xx
that refuses our IP rather than the recipient (smtp.routing.blocks), for the same reason.

A destination without a Mailbox row (REQUIRE_VERIFIED_DESTINATIONS=false makes none) gets one, unverified:
verification matters only when REQUIRE_VERIFIED_DESTINATIONS=true, and then no row already meant no mail, so
the new row changes nothing about what is delivered. A bounce is no consent: it never verifies an address.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailferry.links import REENABLE_DESTINATION, DestinationLink, link_url, suspension_stamp
from mailferry.logs import get_logger, log
from mailferry.models import BounceEvent, Domain, Mailbox
from mailferry.models.message import BOUNCED, DELIVERED
from mailferry.models.notification import DESTINATION_SUSPENDED
from mailferry.notifications import notify
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage
from mailferry.system_mail.templates import render
from mailferry.system_mail.wording import duration_words
from smtp.routes import FORWARD
from smtp.routing.blocks import is_ip_block

from .outcome import Reply, classify, status_code
from .record import Attempt, Outcome, Target

logger = get_logger("smtp.delivery.bounces")
WINDOW = timedelta(hours=24)
UNKNOWN_USER = "5.1.1"
UNKNOWN_USER_LIMIT = 3  # this many 5.1.1 replies in a row suspend at once
# What a held delivery records on each pass: deferred, so it goes out once re-enabled, or bounces with this
# as its last error when MAX_QUEUE_LIFETIME is over. It names no address: DSNs quote it to the sender.
HELD = Reply(None, "4.2.1 destination suspended after repeated bounces; held until its owner re-enables it")

_mailboxes, _events, _domains = Mailbox.__table__, BounceEvent.__table__, Domain.__table__
_OWNER = select(_domains.c.owner_id).where(_domains.c.id == bindparam("b_domain_id")).scalar_subquery()
_OF_DESTINATION = (_mailboxes.c.owner_id == _OWNER) & (_mailboxes.c.address == bindparam("b_address"))
_RETURNING = (_mailboxes.c.id, _mailboxes.c.owner_id, _mailboxes.c.suspended_at, _mailboxes.c.unknown_user_streak)
# The streak of consecutive 5.1.1: one more, or broken by another failure.
_ONE_MORE_UNKNOWN = (update(_mailboxes).where(_OF_DESTINATION)
                     .values(unknown_user_streak=_mailboxes.c.unknown_user_streak + 1).returning(*_RETURNING))
_OTHER_FAILURE = update(_mailboxes).where(_OF_DESTINATION).values(unknown_user_streak=0).returning(*_RETURNING)
_RECENT = (select(func.count()).select_from(_events)
           .where(_events.c.mailbox_id == bindparam("mailbox_id"), _events.c.at > bindparam("since")))
_SUSPEND = (update(_mailboxes).where(_mailboxes.c.id == bindparam("mailbox_id"))
            .values(suspended_at=bindparam("now"), suspended_reason=bindparam("reason")))


@dataclass(frozen=True)
class Suspension:
    mailbox_id: int
    owner_id: int
    address: str
    reason: str
    suspended_at: datetime


def held(target: Target) -> Attempt:
    """The attempt of a delivery to a suspended destination: nothing is sent."""
    return Attempt(target, HELD)


def counts(o: Outcome) -> bool:
    """Whether this outcome is a bounce of the destination's own (see the module docstring)."""
    reply = o.attempt.reply
    return (o.state == BOUNCED and o.target.kind == FORWARD and o.target.domain_id is not None
            and classify(reply) == BOUNCED and not is_ip_block(reply.code or 0, reply.text))


def reset_streaks(conn: Connection, outcomes: Iterable[Outcome]) -> None:
    """A delivered destination's 5.1.1 streak starts over; a statement only when one had a streak."""
    ids = [o.target.mailbox_id for o in outcomes if o.state == DELIVERED and o.target.unknown_streak]
    if ids:
        conn.execute(update(_mailboxes).where(_mailboxes.c.id.in_(ids), _mailboxes.c.unknown_user_streak > 0)
                     .values(unknown_user_streak=0))


def record_bounces(conn: Connection, outcomes: Iterable[Outcome], *, message_id: str, now: datetime,
                   settings: Settings) -> list[str]:
    """Record each counted bounce of message `message_id` on its Mailbox and suspend those over a limit; the ids
    of the notices queued (dispatch them after the commit)."""
    notices = []
    for o in outcomes:
        if not counts(o):
            continue
        suspension = _record(conn, o, message_id, now, settings)
        if suspension is not None:
            notice = _announce(conn, settings, suspension, o.target.domain_id)
            if notice is not None:
                notices.append(notice)
    return notices


def _record(conn: Connection, o: Outcome, message_id: str, now: datetime, settings: Settings) -> Suspension | None:
    address, status = o.target.destination.lower(), status_code(o.reply)
    params = {"b_domain_id": o.target.domain_id, "b_address": address}
    bump = _ONE_MORE_UNKNOWN if status == UNKNOWN_USER else _OTHER_FAILURE
    # The UPDATE locks the row until the commit: a concurrent settle bouncing to the same destination waits for
    # it, then sees this bounce's event and suspension, so a destination is suspended (and announced) once.
    mailbox = conn.execute(bump, params).first()
    if mailbox is None:
        _create(conn, o.target.domain_id, address, now)
        mailbox = conn.execute(bump, params).one()
    conn.execute(_events.insert().values(mailbox_id=mailbox.id, at=now, status=status, reply=str(o.reply)[:512]))
    if mailbox.suspended_at is not None:  # a delivery that was under way when it was suspended
        return None
    reason = _reason(conn, mailbox, status, o.reply, now, settings)
    if not reason:
        return None
    conn.execute(_SUSPEND, {"mailbox_id": mailbox.id, "now": now, "reason": reason[:255]})
    log(logger, logging.WARNING, "destination suspended", message_id=message_id,
        mailbox_id=mailbox.id, owner_id=mailbox.owner_id, reason=reason)
    return Suspension(mailbox.id, mailbox.owner_id, address, reason, now)


def _reason(conn: Connection, mailbox, status: str, reply: Reply, now: datetime, settings: Settings) -> str:
    """Why the mailbox is to be suspended now, or ""."""
    if status == UNKNOWN_USER and mailbox.unknown_user_streak >= UNKNOWN_USER_LIMIT:
        return f"{mailbox.unknown_user_streak} 'user unknown' replies in a row; last: {reply}"
    recent = conn.execute(_RECENT, {"mailbox_id": mailbox.id, "since": now - WINDOW}).scalar_one()
    limit = settings.BOUNCE_DISABLE_THRESHOLD
    if recent > limit:
        return f"{recent} permanent failures in 24 hours (more than {limit}); last: {reply}"
    return ""


def _create(conn: Connection, domain_id: int, address: str, now: datetime) -> None:
    """An unverified Mailbox for the destination, unless a concurrent settle just made it."""
    owner_id = conn.execute(select(_domains.c.owner_id).where(_domains.c.id == domain_id)).scalar_one()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(_mailboxes)
                 .values(owner_id=owner_id, address=address, verified_by="", confirm_nonce="", suspended_reason="",
                         unknown_user_streak=0, created_at=now)
                 .on_conflict_do_nothing(index_elements=["owner_id", "address"]))


def _announce(conn: Connection, settings: Settings, s: Suspension, domain_id: int | None) -> str | None:
    stamp = suspension_stamp(s.suspended_at)
    reenable = link_url(settings, REENABLE_DESTINATION, DestinationLink(s.mailbox_id, stamp))
    text, html = render("destination_suspended", address=s.address, reason=s.reason, reenable_url=reenable,
                        dashboard_url=settings.public_url + "/destinations",
                        held_for=duration_words(settings.MAX_QUEUE_LIFETIME))
    message = SystemMessage(to="", subject=f"Forwarding to {s.address} is suspended", text=text, html=html,
                            kind=DESTINATION_SUSPENDED)
    return notify(conn, settings, s.owner_id, DESTINATION_SUSPENDED, f"mailbox:{s.mailbox_id}:{stamp}", message,
                  domain_id)
