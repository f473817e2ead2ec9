"""Daily counters: upserted per domain and for all domains, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailferry.models import DailyStat
from mailferry.stats import bump_daily


def test_bump_adds_to_the_domain_row_and_the_all_domains_row(db):
    with db.session() as s:
        bump_daily(s, 7, forwarded=1, dkim_signed=1)
    with db.session() as s:
        bump_daily(s, 7, forwarded=2, bounced=1)
        bump_daily(s, None, deferred=1)
    with db.session() as s:
        rows = {r.domain_id: (r.forwarded, r.bounced, r.deferred, r.dkim_signed) for r in s.scalars(select(DailyStat))}
    assert rows == {0: (3, 1, 1, 1), 7: (3, 1, 0, 1)}


def test_unknown_counter_is_refused(db):
    with db.session() as s, pytest.raises(ValueError, match="unknown counters: nope"):
        bump_daily(s, 1, nope=1)
