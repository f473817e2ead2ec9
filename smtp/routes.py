"""What one accepted RCPT expands to, and the rows a spooled message is made of.

Both the inbound server (at DATA) and tests that seed the queue build messages through
`build_message`, so the worker sees one shape whatever created the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailferry.models import Delivery, Message, utcnow
from mailferry.models.message import PENDING, QUEUED

FORWARD = "forward"          # alias -> its destinations, SRS + DKIM on the way out
SRS_RETURN = "srs_return"    # mail to one of our SRS addresses -> back to the original sender


@dataclass(frozen=True)
class Route:
    recipient: str                    # the RCPT TO address as accepted
    destinations: tuple[str, ...]     # where copies go
    kind: str = FORWARD
    domain_id: int | None = None
    alias_id: int | None = None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _header(headers, name: str) -> str:
    value = headers.get(name, "") or ""
    return str(value).replace("\r", " ").replace("\n", " ").strip()[:998]


def build_message(message_id: str, *, mail_from: str, routes: list[Route], raw: bytes, peer: str = "",
                  helo: str = "", used_tls: bool = False) -> Message:
    """A Message with one pending Delivery per (recipient, destination), ready to add and commit."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
    now = utcnow()
    message = Message(
        id=message_id, received_at=now, peer=peer, helo=helo[:255], mail_from=mail_from,
        rcpt_tos=[r.recipient for r in routes], size=len(raw), raw=raw,
        message_id_header=_header(headers, "Message-ID"), subject=_header(headers, "Subject"),
        used_tls=used_tls, state=QUEUED, next_attempt_at=now, attempts=0,
    )
    seen: set[str] = set()
    for route in routes:
        for destination in route.destinations:
            if destination.lower() in seen:  # two aliases to one mailbox: deliver one copy
                continue
            seen.add(destination.lower())
            message.deliveries.append(Delivery(
                recipient=route.recipient, destination=destination, destination_domain=domain_of(destination),
                kind=route.kind, domain_id=route.domain_id, alias_id=route.alias_id, state=PENDING,
                next_attempt_at=now, updated_at=now,
            ))
    return message
