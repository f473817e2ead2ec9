"""Verified destinations: one Mailbox per (owner, address), confirmed once by a signed one-use link sent to the
address, then usable by every alias of that owner (smtp/recipients.py keeps only usable ones at RCPT).

Confirmation mail is the only mail an owner can make us send to an address that never agreed to anything, so
it is limited: a link is re-sent at most every RESEND_INTERVAL, at most MAX_PER_ADDRESS_PER_DAY times a day to
one address, and at most MAX_PER_OWNER_PER_DAY confirmations a day per owner. Each confirmation sent is
recorded as a Notification row of its kind (CONFIRMATION, SIGNUP) for the owner: that is what is counted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailferry.held_mail import release_held
from mailferry.links import (
    CONFIRM_DESTINATION,
    REENABLE_DESTINATION,
    DestinationLink,
    LinkError,
    link_url,
    read_token,
    suspension_stamp,
)
from mailferry.models import Alias, BounceEvent, Domain, Mailbox, Notification, User, utcnow
from mailferry.models.mailbox import BY_ADMIN, BY_LINK
from mailferry.settings import Settings
from mailferry.system_mail import SystemMessage
from mailferry.system_mail.templates import render

from .access import Actor, sees_everything
from .errors import FORBIDDEN, INVALID, NOT_FOUND, ServiceError
from .outbox import dispatch_after_commit, queue_after_commit
from .users import normalise_email

CONFIRMATION = "confirmation"  # SystemMessage.kind: to a destination an alias names
SIGNUP = "signup"              # SystemMessage.kind: to the address a new account signed up with
RESEND_INTERVAL = timedelta(minutes=10)
MAX_PER_ADDRESS_PER_DAY = 3
MAX_PER_OWNER_PER_DAY = 20
REENABLE_LINK_MAX_AGE = 30 * 86400  # the stamp makes it one-use; the age only bounds a forgotten notice
USED = "used"  # a LinkError reason of ours: the link's nonce or suspension is no longer the current one
DAY = timedelta(days=1)


def _owned(query, actor: Actor):
    return query if sees_everything(actor) else query.where(Mailbox.owner_id == actor.id)


def list_mailboxes(session: Session, actor: Actor) -> list[Mailbox]:
    """The actor's destinations (admins: everyone's), by owner then address."""
    query = _owned(select(Mailbox).join(User, User.id == Mailbox.owner_id), actor)
    return list(session.scalars(query.order_by(User.email, Mailbox.address)))


def get_mailbox(session: Session, mailbox_id: int, actor: Actor) -> Mailbox:
    mailbox = session.scalar(_owned(select(Mailbox).where(Mailbox.id == mailbox_id), actor))
    if mailbox is None:
        raise ServiceError(NOT_FOUND, f"no destination #{mailbox_id}", "destination")
    return mailbox


def find_mailbox(session: Session, owner_id: int, address: str) -> Mailbox | None:
    return session.scalar(select(Mailbox).where(Mailbox.owner_id == owner_id,
                                                Mailbox.address == normalise_email(address, "destinations")))


def statuses(session: Session, owner_id: int, addresses) -> dict[str, Mailbox]:
    """{lower-case address: Mailbox} of the owner's mailboxes among `addresses` (for the alias pages)."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return {}
    rows = session.scalars(select(Mailbox).where(Mailbox.owner_id == owner_id, Mailbox.address.in_(wanted)))
    return {m.address: m for m in rows}


def ensure_mailboxes(session: Session, owner: User, addresses, settings: Settings | None = None) -> list[Mailbox]:
    """A Mailbox for each address the owner's aliases name; the new ones are sent a confirmation (when
    `settings` is given and REQUIRE_VERIFIED_DESTINATIONS is on, within the limits). Existing ones are reused:
    an address is verified once per owner. The new mailboxes, in order."""
    created: list[Mailbox] = []
    for address in dict.fromkeys(normalise_email(a, "destinations") for a in addresses):
        if find_mailbox(session, owner.id, address) is None:
            mailbox = Mailbox(owner_id=owner.id, address=address, verified_by="", confirm_nonce="",
                              suspended_reason="", unknown_user_streak=0)
            session.add(mailbox)
            created.append(mailbox)
    session.flush()
    if settings is not None and settings.REQUIRE_VERIFIED_DESTINATIONS:
        for mailbox in created:
            if _refusal(session, mailbox) is None:
                _send_confirmation(session, settings, mailbox, owner, CONFIRMATION)
    return created


def resend(session: Session, mailbox: Mailbox, actor: Actor, settings: Settings) -> Mailbox:
    """A new confirmation link (the old one stops working); refused when verified, too soon or over a limit."""
    get_mailbox(session, mailbox.id, actor)
    if not settings.REQUIRE_VERIFIED_DESTINATIONS:
        raise ServiceError(INVALID, "destinations need no confirmation here (REQUIRE_VERIFIED_DESTINATIONS=false)",
                           "destination")
    if mailbox.verified:
        raise ServiceError(INVALID, f"{mailbox.address} is already verified", "destination")
    refusal = _refusal(session, mailbox)
    if refusal:
        raise ServiceError(INVALID, refusal, "destination")
    owner = session.get(User, mailbox.owner_id)
    kind = SIGNUP if mailbox.address == owner.email else CONFIRMATION
    _send_confirmation(session, settings, mailbox, owner, kind)
    return mailbox


def _refusal(session: Session, mailbox: Mailbox) -> str | None:
    """Why no confirmation may be sent to this mailbox now, or None."""
    now = utcnow()
    if mailbox.confirm_sent_at is not None and now - mailbox.confirm_sent_at < RESEND_INTERVAL:
        minutes = int(RESEND_INTERVAL.total_seconds() // 60)
        return f"a confirmation was sent to {mailbox.address} less than {minutes} minutes ago; check its inbox"
    sent = select(func.count()).select_from(Notification).where(
        Notification.user_id == mailbox.owner_id, Notification.kind.in_((CONFIRMATION, SIGNUP)),
        Notification.created_at > now - DAY)
    if (session.scalar(sent.where(Notification.key.like(f"mailbox:{mailbox.id}:%"))) or 0) >= MAX_PER_ADDRESS_PER_DAY:
        return f"{mailbox.address} was sent {MAX_PER_ADDRESS_PER_DAY} confirmations today; try again tomorrow"
    if (session.scalar(sent) or 0) >= MAX_PER_OWNER_PER_DAY:
        return f"{MAX_PER_OWNER_PER_DAY} confirmations were sent for this account today; try again tomorrow"
    return None


def _send_confirmation(session: Session, settings: Settings, mailbox: Mailbox, owner: User, kind: str) -> str:
    mailbox.confirm_nonce = secrets.token_urlsafe(24)
    mailbox.confirm_sent_at = utcnow()
    url = link_url(settings, CONFIRM_DESTINATION, DestinationLink(mailbox.id, mailbox.confirm_nonce))
    hours = max(1, settings.CONFIRMATION_LINK_MAX_AGE // 3600)
    text, html = render(kind, address=mailbox.address, owner=owner.email, url=url, hours=hours)
    subject = "Confirm your Mailferry account address" if kind == SIGNUP else \
        "Confirm that mail may be forwarded to this address"
    message_id = queue_after_commit(session, settings, SystemMessage(mailbox.address, subject, text, html, kind))
    session.add(Notification(user_id=owner.id, kind=kind, key=f"mailbox:{mailbox.id}:{mailbox.confirm_nonce}",
                             message_id=message_id))
    session.flush()
    return message_id


def start_signup(session: Session, user: User, settings: Settings) -> Mailbox:
    """A new account's own address: its mailbox, and (verification on) the sign-up confirmation."""
    mailbox = find_mailbox(session, user.id, user.email) or _new(session, user.id, user.email)
    if settings.REQUIRE_VERIFIED_DESTINATIONS and not mailbox.verified and _refusal(session, mailbox) is None:
        _send_confirmation(session, settings, mailbox, user, SIGNUP)
    return mailbox


def verify_own_address(session: Session, user: User) -> Mailbox:
    """An account an admin (or the operator's CLI) created: its own address counts as verified by them."""
    mailbox = find_mailbox(session, user.id, user.email) or _new(session, user.id, user.email)
    _mark(mailbox, BY_ADMIN)
    session.flush()
    return mailbox


def _new(session: Session, owner_id: int, address: str) -> Mailbox:
    mailbox = Mailbox(owner_id=owner_id, address=normalise_email(address), verified_by="", confirm_nonce="",
                      suspended_reason="", unknown_user_streak=0)
    session.add(mailbox)
    session.flush()
    return mailbox


def _mark(mailbox: Mailbox, how: str) -> None:
    if not mailbox.verified:
        mailbox.verified_at, mailbox.verified_by = utcnow(), how
    mailbox.confirm_nonce = ""  # any link still out there is used up


def mark_verified(session: Session, mailbox: Mailbox, actor: Actor) -> Mailbox:
    """Admins vouch for an address (BY_ADMIN), e.g. one they know belongs to the owner."""
    if not actor.is_admin:
        raise ServiceError(FORBIDDEN, "only an admin can mark a destination verified", "destination")
    _mark(mailbox, BY_ADMIN)
    session.flush()
    return mailbox


def remove(session: Session, mailbox: Mailbox, actor: Actor) -> None:
    """Delete a destination no alias of its owner names any more (its verification goes with it)."""
    get_mailbox(session, mailbox.id, actor)
    if (mailbox.owner_id, mailbox.address) in kept(session, [mailbox.owner_id]):
        raise ServiceError(INVALID, f"{mailbox.address} is an alias destination or the account's own address; "
                           "change the alias first", "destination")
    session.delete(mailbox)
    session.flush()


def kept(session: Session, owner_ids) -> set[tuple[int, str]]:
    """(owner id, address) pairs that cannot be removed: named by an alias of the owner, or the account's own."""
    owner_ids = list(set(owner_ids))
    named = session.execute(select(Domain.owner_id, Alias.destinations).join(Alias.domain)
                            .where(Domain.owner_id.in_(owner_ids)))
    result = {(owner_id, d.lower()) for owner_id, destinations in named for d in destinations or ()}
    return result | set(session.execute(select(User.id, User.email).where(User.id.in_(owner_ids))).tuples())


# ---- links (no account needed: whoever holds the link) ----

@dataclass(frozen=True)
class LinkTarget:
    mailbox: Mailbox
    owner_email: str


def read_confirmation(session: Session, settings: Settings, token: str) -> LinkTarget:
    """The mailbox a confirmation link is for; LinkError(expired|invalid|used). Changes nothing."""
    link = read_token(settings, CONFIRM_DESTINATION, token, settings.CONFIRMATION_LINK_MAX_AGE)
    mailbox = session.get(Mailbox, link.mailbox_id)
    if mailbox is None:
        raise LinkError(USED)
    if not mailbox.confirm_nonce or not secrets.compare_digest(mailbox.confirm_nonce, link.stamp):
        raise LinkError(USED)
    return LinkTarget(mailbox, session.scalar(select(User.email).where(User.id == mailbox.owner_id)) or "")


def confirm(session: Session, settings: Settings, token: str) -> Mailbox:
    """Verify the mailbox of a confirmation link (BY_LINK); the link is used up."""
    mailbox = read_confirmation(session, settings, token).mailbox
    _mark(mailbox, BY_LINK)
    session.flush()
    return mailbox


def read_reenable(session: Session, settings: Settings, token: str) -> LinkTarget:
    """The suspended mailbox a re-enable link lifts; LinkError(expired|invalid|used). Changes nothing."""
    link = read_token(settings, REENABLE_DESTINATION, token, REENABLE_LINK_MAX_AGE)
    mailbox = session.get(Mailbox, link.mailbox_id)
    if mailbox is None or mailbox.suspended_at is None or suspension_stamp(mailbox.suspended_at) != link.stamp:
        raise LinkError(USED)
    return LinkTarget(mailbox, session.scalar(select(User.email).where(User.id == mailbox.owner_id)) or "")


def reenable_from_link(session: Session, settings: Settings, token: str) -> Mailbox:
    mailbox = read_reenable(session, settings, token).mailbox
    _lift(session, mailbox, settings)
    return mailbox


def reenable(session: Session, mailbox: Mailbox, actor: Actor, settings: Settings | None = None) -> Mailbox:
    """Lift a suspension (the owner or an admin): mail flows again and the bounce count starts over."""
    get_mailbox(session, mailbox.id, actor)
    if mailbox.suspended_at is None:
        raise ServiceError(INVALID, f"{mailbox.address} is not suspended", "destination")
    _lift(session, mailbox, settings)
    return mailbox


def _lift(session: Session, mailbox: Mailbox, settings: Settings | None) -> None:
    """The mail held for the mailbox is due at once: its jobs are enqueued after the commit when `settings` are
    given, else the reconciler enqueues it within RECONCILE_INTERVAL."""
    mailbox.suspended_at, mailbox.suspended_reason, mailbox.unknown_user_streak = None, "", 0
    session.execute(delete(BounceEvent).where(BounceEvent.mailbox_id == mailbox.id))
    session.flush()
    released = release_held(session.connection(), mailbox.id)
    if released and settings is not None:
        dispatch_after_commit(session, settings, released)


def status(mailbox: Mailbox) -> str:
    """verified | pending | suspended (suspension wins: a suspended mailbox receives nothing)."""
    if mailbox.suspended:
        return "suspended"
    return "verified" if mailbox.verified else "pending"


def mailbox_dict(mailbox: Mailbox, owner_email: str | None = None) -> dict:
    return {
        "id": mailbox.id,
        "address": mailbox.address,
        "owner": owner_email if owner_email is not None else mailbox.owner.email,
        "status": status(mailbox),
        "verified_at": _iso(mailbox.verified_at),
        "verified_by": mailbox.verified_by or None,
        "confirmation_sent_at": _iso(mailbox.confirm_sent_at),
        "suspended_at": _iso(mailbox.suspended_at),
        "suspended_reason": mailbox.suspended_reason or None,
    }


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None
