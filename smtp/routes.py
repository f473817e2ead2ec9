"""What one accepted RCPT expands to, and the rows a spooled message is made of.

`message_rows` is the one description of those rows: the inbound server inserts them with Core
(executemany, no ORM unit of work), and `build_message` (tests, tools) makes ORM objects of the same
rows, so the worker sees one shape whatever created the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailferry.models import Delivery, Message, utcnow
from mailferry.models.message import PENDING, QUEUED
from smtp.inbound.policy import DomainPolicy

FORWARD = "forward"          # alias -> its destinations, SRS + DKIM on the way out
SRS_RETURN = "srs_return"    # mail to one of our SRS addresses -> back to the original sender


@dataclass(frozen=True)
class Route:
    recipient: str                    # the RCPT TO address as accepted
    destinations: tuple[str, ...]     # where copies go
    kind: str = FORWARD
    domain_id: int | None = None
    alias_id: int | None = None
    policy: DomainPolicy | None = field(default=None, compare=False)  # the alias domain's inbound choices


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _header(headers, name: str) -> str:
    value = headers.get(name, "") or ""
    # PostgreSQL text holds no NUL: one in a Subject failed the spool commit (451 to every retry of the message)
    return str(value).replace("\r", " ").replace("\n", " ").replace("\x00", "").strip()[:998]


def message_rows(message_id: str, *, mail_from: str, routes: list[Route], raw: bytes, peer: str = "",
                 helo: str = "", used_tls: bool = False, state: str = QUEUED,
                 findings: dict | None = None) -> tuple[dict, list[dict]]:
    """The `messages` row and its `deliveries` rows (one pending per distinct destination), as column dicts.
    `findings`: what the inbound checks found (smtp/inbound/pipeline.Decision.columns)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
    now = utcnow()
    message = {
        "id": message_id, "received_at": now, "peer": peer, "helo": helo[:255], "mail_from": mail_from,
        "rcpt_tos": [r.recipient for r in routes], "size": len(raw), "raw": raw,
        "message_id_header": _header(headers, "Message-ID"), "subject": _header(headers, "Subject"),
        "used_tls": used_tls, "state": state, "next_attempt_at": now, "attempts": 0,
        "lease_until": None, "lease_owner": None, "enqueued_at": None, "completed_at": None,
        "auth_results": None, "rewrite_from": False, "dsn_block": "", "spam_score": None, "filter_reason": "",
        **(findings or {}),
    }
    deliveries: list[dict] = []
    seen: set[str] = set()
    for route in routes:
        for destination in route.destinations:
            if destination.lower() in seen:  # two aliases to one mailbox: deliver one copy
                continue
            seen.add(destination.lower())
            deliveries.append({
                "message_id": message_id, "recipient": route.recipient, "destination": destination,
                "destination_domain": domain_of(destination), "kind": route.kind, "domain_id": route.domain_id,
                "alias_id": route.alias_id, "state": PENDING, "attempts": 0, "next_attempt_at": now,
                "last_code": None, "last_reply": "", "route": "", "tls": False, "updated_at": now,
                "delivered_at": None,
            })
    return message, deliveries


def build_message(message_id: str, *, mail_from: str, routes: list[Route], raw: bytes, peer: str = "",
                  helo: str = "", used_tls: bool = False, state: str = QUEUED, findings: dict | None = None) -> Message:
    """A Message with one pending Delivery per (recipient, destination), ready to add and commit."""
    row, delivery_rows = message_rows(message_id, mail_from=mail_from, routes=routes, raw=raw, peer=peer, helo=helo,
                                      used_tls=used_tls, state=state, findings=findings)
    message = Message(**row)
    for delivery in delivery_rows:
        message.deliveries.append(Delivery(**{k: v for k, v in delivery.items() if k != "message_id"}))
    return message
