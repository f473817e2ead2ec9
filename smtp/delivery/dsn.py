"""Bounces: one RFC 3464 delivery status notification to the original sender, with the original headers.

The destinations an alias forwards to are private to its owner, so the report names the alias address
(and rewrites it into the remote diagnostic) rather than the mailbox behind it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from smtp.routes import Route, message_rows

from .outcome import Reply, status_code

DSN_KIND = "dsn"  # Delivery.kind of a bounce we generated: never bounced itself, not counted as forwarded

_NON_ASCII = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Failure:
    recipient: str     # the alias address the sender wrote to
    destination: str   # where we tried to deliver it
    reply: Reply
    mx_host: str = ""


@dataclass(frozen=True)
class OriginalMessage:
    message_id: str
    mail_from: str
    raw: bytes
    received_at: datetime


def _ascii(text: str) -> str:
    return _NON_ASCII.sub("?", " ".join(text.split()))


def _date(when: datetime) -> str:
    return format_datetime(when.replace(tzinfo=timezone.utc))


def header_block(raw: bytes) -> bytes:
    """The original header section, ending in one CRLF."""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[:end + 2]


def _diagnostic(failure: Failure) -> str:
    text = str(failure.reply).replace(failure.destination, failure.recipient)
    return _ascii(text)


def _status_fields(failure: Failure, now: datetime) -> list[str]:
    fields = [
        f"Final-Recipient: rfc822; {_ascii(failure.recipient)}",
        f"Original-Recipient: rfc822; {_ascii(failure.recipient)}",
        "Action: failed",
        f"Status: {status_code(failure.reply)}",
    ]
    if failure.mx_host:
        fields.append(f"Remote-MTA: dns; {_ascii(failure.mx_host)}")
    if failure.reply.code is not None:
        fields.append(f"Diagnostic-Code: smtp; {_diagnostic(failure)}")
    fields.append(f"Last-Attempt-Date: {_date(now)}")
    return fields


def build_dsn(original: OriginalMessage, failures: list[Failure], *, hostname: str, now: datetime,
              dsn_id: str) -> bytes:
    """The complete DSN message (CRLF line endings) from MAILER-DAEMON@hostname to the original sender."""
    boundary = f"=_mailferry_{secrets.token_hex(12)}"
    human = [f"This is the mail system at {hostname}.", "",
             "Your message could not be delivered to the following recipient(s):", ""]
    human += [f"<{_ascii(f.recipient)}>: {_diagnostic(f)}" for f in failures]
    report = [f"Reporting-MTA: dns; {hostname}", f"X-Mailferry-Queue-ID: {original.message_id}",
              f"Arrival-Date: {_date(original.received_at)}", ""]
    for failure in failures:
        report += _status_fields(failure, now) + [""]
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{_ascii(original.mail_from)}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {_date(now)}",
        f"Message-ID: <{dsn_id}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "", "This is a MIME-encapsulated message.", "",
        f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "Content-Description: Notification", "",
        *human, "",
        f"--{boundary}", "Content-Type: message/delivery-status", "Content-Description: Delivery report", "",
        *report,
        f"--{boundary}", "Content-Type: text/rfc822-headers", "Content-Description: Undelivered Message Headers", "",
    ]
    text = "\r\n".join(head).encode("ascii") + b"\r\n"
    return text + header_block(original.raw) + f"\r\n--{boundary}--\r\n".encode("ascii")


def new_message_id() -> str:
    return secrets.token_hex(8).upper()


def dsn_rows(original: OriginalMessage, failures: list[Failure], *, hostname: str, now: datetime,
             domain_id: int | None) -> tuple[dict, list[dict]]:
    """The DSN as the rows of a queued message (null sender, one delivery to the original sender), to insert."""
    dsn_id = new_message_id()
    raw = build_dsn(original, failures, hostname=hostname, now=now, dsn_id=dsn_id)
    route = Route(recipient=original.mail_from, destinations=(original.mail_from,), kind=DSN_KIND, domain_id=domain_id)
    return message_rows(dsn_id, mail_from="", routes=[route], raw=raw, peer="127.0.0.1", helo=hostname)
