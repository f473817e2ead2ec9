"""Reading back the notices a test made: the Notification rows and the system messages they queued."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from sqlalchemy import select

from mailferry.models import Delivery, Message, Notification
from mailferry.queue import has_live_job


@dataclass
class Notice:
    key: str
    to: str  # the delivery's destination
    mime: EmailMessage
    message_id: str

    @property
    def text(self) -> str:
        return self.mime.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.mime.get_body(("html",)).get_content()


def notices(db, kind: str) -> list[Notice]:
    """Every notice of `kind`, oldest first."""
    with db.session() as s:
        rows = s.execute(select(Notification.key, Notification.message_id, Message.raw, Delivery.destination)
                         .join(Message, Message.id == Notification.message_id)
                         .join(Delivery, Delivery.message_id == Message.id)
                         .where(Notification.kind == kind).order_by(Notification.id)).all()
    return [Notice(key, to, message_from_bytes(raw, policy=default_policy), mid) for key, mid, raw, to in rows]


def dispatched(redis_conn, notice: Notice) -> bool:
    """Its delivery job is waiting in Redis (dispatched after the commit)."""
    return has_live_job(redis_conn, notice.message_id)
