"""Daily counters per domain (and domain_id 0 for all domains), bumped in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import DailyStat, utcnow
from .models.stats import COUNTERS

ALL_DOMAINS = 0


def bump_daily(session: Session, domain_id: int | None, **counts: int) -> None:
    """Add `counts` (e.g. forwarded=1) to today's row of the domain and of the all-domains row."""
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown counters: {', '.join(sorted(unknown))}")
    counts = {k: v for k, v in counts.items() if v}
    if not counts:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = DailyStat.__table__
    day = utcnow().date()
    for target in sorted({ALL_DOMAINS, domain_id or ALL_DOMAINS}):
        row = {c: 0 for c in COUNTERS} | counts | {"domain_id": target, "day": day}
        stmt = dialect.insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["domain_id", "day"], set_={c: table.c[c] + n for c, n in counts.items()},
        )
        session.execute(stmt)
