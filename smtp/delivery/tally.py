"""Counters a batch adds up instead of writing per message: daily stats per domain and alias counters.

A message delivered by its own job writes its counters in its settling transaction. A batch adds them up
here and writes them once, in one transaction after its last message (two statements per domain and per
alias instead of two per message). A worker killed mid-batch loses the counts of the messages it settled
in that batch; what was delivered, the attempts and the DSNs are committed per message regardless.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, update
from sqlalchemy.orm import Session

from mailferry.models import Alias
from mailferry.stats import bump_daily

from .observe import Observed


@dataclass
class AliasCount:
    forwarded: int = 0
    bounced: int = 0
    last_used_at: datetime | None = None


@dataclass
class Tally:
    daily: dict[int | None, Counter[str]] = field(default_factory=dict)
    aliases: dict[int, AliasCount] = field(default_factory=dict)
    # One transaction's tries for the metrics (smtp/delivery/observe.py): reported, not added or written.
    observed: list[Observed] = field(default_factory=list)

    def bump(self, domain_id: int | None, **counts: int) -> None:
        self.daily.setdefault(domain_id, Counter()).update({k: v for k, v in counts.items() if v})

    def alias_used(self, alias_id: int, *, delivered: bool, now: datetime) -> None:
        count = self.aliases.setdefault(alias_id, AliasCount())
        count.forwarded += int(delivered)
        count.bounced += int(not delivered)
        count.last_used_at = max(count.last_used_at or now, now)

    def add(self, other: "Tally") -> None:
        """Fold in another tally's counts (a settled message's, once its transaction has committed)."""
        for domain_id, counts in other.daily.items():
            self.daily.setdefault(domain_id, Counter()).update(counts)
        for alias_id, count in other.aliases.items():
            mine = self.aliases.setdefault(alias_id, AliasCount())
            mine.forwarded += count.forwarded
            mine.bounced += count.bounced
            if count.last_used_at is not None:
                mine.last_used_at = max(mine.last_used_at or count.last_used_at, count.last_used_at)

    def __bool__(self) -> bool:
        return bool(self.daily or self.aliases)

    def write(self, session: Session | Connection) -> None:
        """Add everything to the database in the caller's transaction, in a fixed order (no lock-order deadlock
        between two workers writing theirs), and start again from zero."""
        for domain_id in sorted(self.daily, key=lambda d: d or 0):
            bump_daily(session, domain_id, **self.daily[domain_id])
        for alias_id in sorted(self.aliases):
            count = self.aliases[alias_id]
            session.execute(
                update(Alias.__table__).where(Alias.id == alias_id).values(
                    forwarded_count=Alias.forwarded_count + count.forwarded,
                    bounced_count=Alias.bounced_count + count.bounced, last_used_at=count.last_used_at,
                )
            )
        self.daily.clear()
        self.aliases.clear()
