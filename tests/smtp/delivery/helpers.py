"""Assertions shared by the delivery tests: DKIM verification through the loopback DNS, database reads."""

from __future__ import annotations

import dkim
from sqlalchemy import select

from mailferry.models import Delivery, DeliveryAttempt, Message
from mailferry.resolver import make_resolver


def dkim_verifies(data: bytes, settings, idx: int = 0) -> bool:
    """dkimpy's verdict on the idx-th DKIM-Signature, fetching the key from the test DNS server."""
    resolver = make_resolver(settings)

    def txt(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return dkim.DKIM(data).verify(idx=idx, dnsfunc=txt)


def deliveries(db, message_id: str) -> list[Delivery]:
    with db.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)))


def attempts(db, delivery_id: int) -> list[DeliveryAttempt]:
    with db.session() as s:
        return list(s.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                              .order_by(DeliveryAttempt.id)))


def message(db, message_id: str) -> Message:
    with db.session() as s:
        return s.get(Message, message_id)


def dsn_ids(db) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Delivery.message_id).where(Delivery.kind == "dsn")))
