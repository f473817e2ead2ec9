"""Mail held for a suspended destination (smtp/delivery/bounces.py), sent on as soon as it is re-enabled.

A held delivery waits on the retry schedule (up to its last step, 4 hours by default); the re-enable service
calls `release_held` in its transaction so the queued mail goes at once, then enqueues the ids it returns
(mailferry.system_mail.dispatch, or the reconciler does it). The open messages are found through
ix_messages_state_next, like the delay warnings: the queue is read, not the log.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from mailferry.models import Delivery, Domain, Mailbox, Message, utcnow
from mailferry.models.message import DEFERRED, PENDING, QUEUED

_deliveries, _messages, _domains = Delivery.__table__, Message.__table__, Domain.__table__


def release_held(conn: Connection, mailbox_id: int) -> list[str]:
    """Make every queued forwarded delivery to this mailbox due now; the ids of their messages."""
    mailbox = conn.execute(select(Mailbox.owner_id, Mailbox.address).where(Mailbox.id == mailbox_id)).one()
    held = conn.execute(
        select(_deliveries.c.id, _deliveries.c.message_id)
        .select_from(_messages.join(_deliveries, _deliveries.c.message_id == _messages.c.id)
                     .join(_domains, _domains.c.id == _deliveries.c.domain_id))
        .where(_messages.c.state == QUEUED, _deliveries.c.kind == "forward",
               _deliveries.c.state.in_((PENDING, DEFERRED)), _domains.c.owner_id == mailbox.owner_id,
               func.lower(_deliveries.c.destination) == mailbox.address)).all()
    if not held:
        return []
    now = utcnow()
    message_ids = sorted({h.message_id for h in held})
    conn.execute(update(_deliveries).where(_deliveries.c.id.in_([h.id for h in held])).values(next_attempt_at=now))
    conn.execute(update(_messages).where(_messages.c.id.in_(message_ids), _messages.c.state == QUEUED)
                 .values(next_attempt_at=now))
    return message_ids
