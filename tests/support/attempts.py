"""Delivery outcomes written the way the worker writes them (smtp.delivery.record), for stats tests."""

from __future__ import annotations

from sqlalchemy import select

from mailferry.db import Database
from mailferry.models import Delivery, Message, utcnow
from smtp.delivery.dsn import new_message_id
from smtp.delivery.outcome import Reply
from smtp.delivery.record import Attempt, Target, outcome, write_outcomes
from smtp.delivery.settle import counted
from smtp.routes import Route, build_message


def record_outcomes(db: Database, settings, destination: str, outcomes: list[tuple[str, int, bool]]) -> str:
    """One message to `destination`; each (route, reply code, DKIM signed) recorded as an attempt in turn."""
    message_id = new_message_id()
    with db.session() as s:
        s.add(build_message(message_id, mail_from="alice@sender.test", raw=b"From: a@sender.test\r\n\r\nhi\r\n",
                            routes=[Route("hello@alias.test", (destination,))]))
    for route, code, signed in outcomes:
        with counted(db.engine, None) as (conn, counts):
            received_at = conn.scalar(select(Message.received_at).where(Message.id == message_id))
            d = conn.execute(select(Delivery.__table__).where(Delivery.message_id == message_id)).one()
            target = Target(d.id, d.recipient, d.destination, d.destination_domain, d.kind, d.domain_id, d.alias_id,
                            d.attempts)
            reply = Reply(code, {2: "2.0.0 ok", 4: "4.3.0 try later", 5: "5.1.1 no such user"}[code // 100])
            now = utcnow()
            result = outcome(Attempt(target, reply, dkim_signed=signed, route=route), attempts_before=d.attempts,
                             now=now, received_at=received_at, settings=settings)
            write_outcomes(conn, [result], now=now, counts=counts, check_attempts=True)
    return message_id
