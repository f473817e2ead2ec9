"""Smart routing: per destination domain, the recent success rate of direct and of relay delivery, kept in
the database (RouteStat) so every worker on every host routes by the same history."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailferry.models import RouteStat, utcnow

DIRECT, RELAY, HYBRID = "direct", "relay", "hybrid"
WEIGHT = 0.3            # how much the newest outcome moves the score
EXPLORE = 0.1           # share of messages sent the other way, so a recovered route is noticed
MIN_SAMPLES = 3         # outcomes needed on a route before its score is trusted
MARGIN = 0.05           # direct (cheaper, no relay quota) wins unless the relay is clearly better


@dataclass(frozen=True)
class RouteScore:
    route: str
    score: float        # exponentially weighted success rate, 0..1
    successes: int
    failures: int

    @property
    def samples(self) -> int:
        return self.successes + self.failures


def scores(session: Session, destination_domain: str) -> dict[str, RouteScore]:
    rows = session.scalars(select(RouteStat).where(RouteStat.destination_domain == destination_domain))
    return {r.route: RouteScore(r.route, r.score_milli / 1000, r.successes, r.failures) for r in rows}


def choose(session: Session, destination_domain: str, rng: random.Random | None = None) -> str:
    """DIRECT or RELAY by recent success, or HYBRID (direct, relay fallback) while there is no history."""
    rng = rng or random
    known = {k: v for k, v in scores(session, destination_domain).items() if v.samples >= MIN_SAMPLES}
    if DIRECT not in known and RELAY not in known:
        return HYBRID
    direct = known.get(DIRECT, RouteScore(DIRECT, 1.0, 0, 0)).score
    relay = known.get(RELAY, RouteScore(RELAY, 1.0, 0, 0)).score
    # The score converges on, never reaches, 1.0: without a margin a recovered direct route would never
    # overtake a relay that keeps succeeding.
    best, other = (DIRECT, RELAY) if direct >= relay - MARGIN else (RELAY, DIRECT)
    return other if rng.random() < EXPLORE else best


def record(session: Session, destination_domain: str, route: str, ok: bool) -> None:
    """Fold one outcome into the route's score (commit is the caller's)."""
    for _ in range(2):  # a concurrent first insert by another worker: retry as an update
        row = session.scalar(select(RouteStat).where(RouteStat.destination_domain == destination_domain,
                                                     RouteStat.route == route).with_for_update())
        if row is None:
            try:
                with session.begin_nested():
                    session.add(RouteStat(destination_domain=destination_domain, route=route,
                                          successes=int(ok), failures=int(not ok),
                                          score_milli=1000 if ok else 0, updated_at=utcnow()))
                return
            except IntegrityError:
                continue
        row.successes += int(ok)
        row.failures += int(not ok)
        row.score_milli = round(row.score_milli * (1 - WEIGHT) + (1000 if ok else 0) * WEIGHT)
        row.updated_at = utcnow()
        return
