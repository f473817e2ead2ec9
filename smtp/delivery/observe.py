"""The worker's delivery metrics, counted from the outcomes a settling transaction wrote once it committed.

In-process counters only (mailferry.metrics): no Redis or database round trip on the delivery path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mailferry.metrics import route_label, worker_metrics
from mailferry.models.message import DELIVERED


@dataclass(frozen=True)
class Observed:
    """One try written to a delivery: its outcome (delivered, deferred, bounced), route and time."""

    state: str
    via: str
    dkim_signed: bool
    at: datetime


def report(observed: Iterable[Observed], received_at: datetime | None) -> None:
    """Count committed tries; the delivered ones' time since `received_at` goes to the latency histogram."""
    metrics = worker_metrics()
    for o in observed:
        metrics.deliveries.labels(o.state, route_label(o.via)).inc()
        if o.state != DELIVERED:
            continue
        metrics.dkim.labels("true" if o.dkim_signed else "false").inc()
        if received_at is not None:
            metrics.delivery_latency.observe(max(0.0, (o.at - received_at).total_seconds()))
