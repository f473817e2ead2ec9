"""A system message as MIME: multipart/alternative (plain text and HTML), CRLF line endings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from mailferry.settings import Settings

KIND_HEADER = "X-Mailferry-Notice"  # what the message is (confirmation, dns_broken, ...): for filters and tests


@dataclass(frozen=True)
class SystemMessage:
    to: str
    subject: str
    text: str
    html: str
    kind: str  # what it is: confirmation, signup, destination_suspended, delay_warning, dns_broken, ...


def compose(message: SystemMessage, settings: Settings, *, message_id: str, now: datetime) -> bytes:
    """The complete message, From the configured system sender, `Auto-Submitted: auto-generated` (RFC 3834:
    auto-responders must not answer it)."""
    name, address = settings.system_mail_from
    mime = EmailMessage(policy=SMTP)
    mime["From"] = formataddr((name, address)) if name else address
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(now.replace(tzinfo=timezone.utc))
    mime["Message-ID"] = f"<{message_id}.system@{settings.SMTP_HOSTNAME}>"
    mime["Auto-Submitted"] = "auto-generated"
    mime[KIND_HEADER] = message.kind
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime.as_bytes()
