"""A delivery pass's view of the messages it claimed: Snapshots, their deliveries read in one Core query.

The same query reads each forwarded delivery's Mailbox (alias domain's owner, destination address: the unique
key, one index probe), so a suspended destination is held and a 5.1.1 streak is known without another statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, and_, func, select

from mailferry.models import Delivery, Domain, Mailbox, utcnow
from mailferry.models.message import DEFERRED, PENDING
from smtp.routes import FORWARD

from .record import Target
from .senders import Snapshot

_deliveries, _domains, _mailboxes = Delivery.__table__, Domain.__table__, Mailbox.__table__
_COLUMNS = (_deliveries.c.id, _deliveries.c.message_id, _deliveries.c.recipient, _deliveries.c.destination,
            _deliveries.c.destination_domain, _deliveries.c.kind, _deliveries.c.domain_id, _deliveries.c.alias_id,
            _deliveries.c.state, _deliveries.c.attempts, _deliveries.c.next_attempt_at,
            _mailboxes.c.id.label("mailbox_id"), _mailboxes.c.suspended_at, _mailboxes.c.unknown_user_streak)
_WITH_MAILBOX = (
    _deliveries
    .outerjoin(_domains, and_(_domains.c.id == _deliveries.c.domain_id, _deliveries.c.kind == FORWARD))
    .outerjoin(_mailboxes, and_(_mailboxes.c.owner_id == _domains.c.owner_id,
                                _mailboxes.c.address == func.lower(_deliveries.c.destination)))
)


def snapshots(conn: Connection, claimed: Sequence[Row]) -> dict[str, Snapshot]:
    """Snapshots of the messages claimed (rows of lease.CLAIMED) with their due destinations."""
    if not claimed:
        return {}
    now = utcnow()
    rows: dict[str, list[Row]] = {m.id: [] for m in claimed}
    query = (select(*_COLUMNS).select_from(_WITH_MAILBOX).where(_deliveries.c.message_id.in_(list(rows)))
             .order_by(_deliveries.c.id))
    for d in conn.execute(query):
        rows[d.message_id].append(d)
    return {m.id: _snapshot(m, rows[m.id], now) for m in claimed}


def _snapshot(m: Row, deliveries: list[Row], now: datetime) -> Snapshot:
    open_ = [d for d in deliveries if d.state in (PENDING, DEFERRED)]
    due = [d for d in open_ if d.next_attempt_at is None or d.next_attempt_at <= now]
    targets = tuple(Target(d.id, d.recipient, d.destination, d.destination_domain, d.kind, d.domain_id, d.alias_id,
                           d.attempts, d.mailbox_id, d.suspended_at is not None, d.unknown_user_streak or 0)
                    for d in due)
    return Snapshot(m.id, m.mail_from, m.raw, m.received_at, m.helo, m.peer, m.used_tls, targets,
                    all_open_due=len(due) == len(open_), auth_results=m.auth_results, rewrite_from=m.rewrite_from,
                    dsn_block=m.dsn_block)
