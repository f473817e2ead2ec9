"""Reading the confirmation mail the service queued, as the recipient would: the link in its text part."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as default_policy

from sqlalchemy import select

from harness.settings import make_settings
from mailferry.models import Mailbox, Message, User

LINK = re.compile(r"https?://\S+/destinations/(?:confirm|reenable)/(\S+)")


def verified_settings(db_url: str, redis_url: str, **overrides):
    """The production default: destinations must be confirmed."""
    return make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, REQUIRE_VERIFIED_DESTINATIONS="true", **overrides)


def system_mail_to(db, address: str) -> list[Message]:
    """The system messages queued to `address`, oldest first."""
    with db.session() as s:
        rows = s.scalars(select(Message).order_by(Message.received_at, Message.id))
        return [m for m in rows if m.rcpt_tos == [address]]


def _link(raw: bytes):
    text = message_from_bytes(raw, policy=default_policy).get_body(("plain",)).get_content()
    match = LINK.search(text)
    assert match, text
    return match


def token_in(raw: bytes) -> str:
    """The token of the link in a message's plain-text part."""
    return _link(raw).group(1)


def link_in(raw: bytes) -> str:
    """The whole link in a message's plain-text part."""
    return _link(raw).group(0)


def kind_of(raw: bytes) -> str:
    return message_from_bytes(raw, policy=default_policy)["X-Mailferry-Notice"]


def mailbox(db, address: str, owner_email: str = "owner@people.test") -> Mailbox:
    with db.session() as s:
        owner_id = s.scalar(select(User.id).where(User.email == owner_email))
        return s.scalar(select(Mailbox).where(Mailbox.owner_id == owner_id, Mailbox.address == address))
