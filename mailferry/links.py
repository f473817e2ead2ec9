"""Signed, expiring links in the mail we send (confirm a destination, re-enable a suspended one).

A link carries a small payload signed with SECRET_KEY (itsdangerous, one salt per purpose, so a token made for
one purpose is worthless for another) and its creation time; it expires after `max_age`. Links are one-use by
what they carry: a confirmation holds the mailbox's current nonce (replaced once used or re-sent), a re-enable
link the time of the suspension it lifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from mailferry.settings import Settings

CONFIRM_DESTINATION = "confirm-destination"
REENABLE_DESTINATION = "reenable-destination"
PATHS = {CONFIRM_DESTINATION: "/destinations/confirm/", REENABLE_DESTINATION: "/destinations/reenable/"}
EXPIRED = "expired"
INVALID = "invalid"


class LinkError(ValueError):
    def __init__(self, reason: str):
        super().__init__(f"this link is {reason}")
        self.reason = reason  # EXPIRED or INVALID


@dataclass(frozen=True)
class DestinationLink:
    mailbox_id: int
    stamp: str  # the confirmation nonce, or the suspension time (ISO) a re-enable link lifts


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.SECRET_KEY, salt=f"mailferry-link-{purpose}")


def make_token(settings: Settings, purpose: str, link: DestinationLink) -> str:
    return _serializer(settings, purpose).dumps([link.mailbox_id, link.stamp])


def read_token(settings: Settings, purpose: str, token: str, max_age: int) -> DestinationLink:
    """The link's payload; LinkError(EXPIRED) after `max_age` seconds, LinkError(INVALID) when forged or garbled."""
    try:
        mailbox_id, stamp = _serializer(settings, purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkError(EXPIRED) from None
    except (BadSignature, ValueError, TypeError):
        raise LinkError(INVALID) from None
    if not isinstance(mailbox_id, int) or not isinstance(stamp, str):
        raise LinkError(INVALID)
    return DestinationLink(mailbox_id, stamp)


def link_url(settings: Settings, purpose: str, link: DestinationLink) -> str:
    """The absolute URL (PUBLIC_URL) that opens the link's page."""
    return settings.public_url + PATHS[purpose] + make_token(settings, purpose, link)


def suspension_stamp(suspended_at: datetime) -> str:
    return suspended_at.isoformat(timespec="microseconds")
