"""Daily counters per domain (and domain_id 0 for all domains), bumped in the caller's transaction."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from .models import DailyStat, utcnow
from .models.stats import COUNTERS

ALL_DOMAINS = 0


@lru_cache(maxsize=64)
def _upsert(dialect_name: str, counted: tuple[str, ...]) -> Insert:
    """INSERT .. ON CONFLICT (domain_id, day) DO UPDATE adding the counted columns; built once per shape."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = DailyStat.__table__
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["domain_id", "day"], set_={c: table.c[c] + stmt.excluded[c] for c in counted},
    )


def bump_daily(session: Session | Connection, domain_id: int | None, **counts: int) -> None:
    """Add `counts` (e.g. forwarded=1) to today's row of the domain and of the all-domains row, in one
    statement (the rows in a fixed order, so concurrent bumps take their locks in the same order)."""
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown counters: {', '.join(sorted(unknown))}")
    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    day = utcnow().date()
    base = {c: 0 for c in COUNTERS} | counts
    rows = [base | {"domain_id": target, "day": day} for target in sorted({ALL_DOMAINS, domain_id or ALL_DOMAINS})]
    # Core, not the ORM execute path: the statement is on a Table
    connection = session if isinstance(session, Connection) else session.connection()
    connection.execute(_upsert(connection.dialect.name, tuple(sorted(counts))), rows)
