"""A delivery pass's view of the messages it claimed: Snapshots, their deliveries read in one Core query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, select

from mailferry.models import Delivery, utcnow
from mailferry.models.message import DEFERRED, PENDING

from .record import Target
from .senders import Snapshot

_deliveries = Delivery.__table__
_COLUMNS = (_deliveries.c.id, _deliveries.c.message_id, _deliveries.c.recipient, _deliveries.c.destination,
            _deliveries.c.destination_domain, _deliveries.c.kind, _deliveries.c.domain_id, _deliveries.c.alias_id,
            _deliveries.c.state, _deliveries.c.attempts, _deliveries.c.next_attempt_at)


def snapshots(conn: Connection, claimed: Sequence[Row]) -> dict[str, Snapshot]:
    """Snapshots of the messages claimed (rows of lease.CLAIMED) with their due destinations."""
    if not claimed:
        return {}
    now = utcnow()
    rows: dict[str, list[Row]] = {m.id: [] for m in claimed}
    for d in conn.execute(select(*_COLUMNS).where(_deliveries.c.message_id.in_(list(rows))).order_by(_deliveries.c.id)):
        rows[d.message_id].append(d)
    return {m.id: _snapshot(m, rows[m.id], now) for m in claimed}


def _snapshot(m: Row, deliveries: list[Row], now: datetime) -> Snapshot:
    open_ = [d for d in deliveries if d.state in (PENDING, DEFERRED)]
    due = [d for d in open_ if d.next_attempt_at is None or d.next_attempt_at <= now]
    targets = tuple(Target(d.id, d.recipient, d.destination, d.destination_domain, d.kind, d.domain_id, d.alias_id,
                           d.attempts) for d in due)
    return Snapshot(m.id, m.mail_from, m.raw, m.received_at, m.helo, m.peer, m.used_tls, targets,
                    all_open_due=len(due) == len(open_), auth_results=m.auth_results, rewrite_from=m.rewrite_from,
                    dsn_block=m.dsn_block)
