"""Prometheus metrics: every metric a process updates itself, each defined once (names start `mailferry_`).

The SMTP server's and the worker's metrics live in prometheus_client's default registry and are made on
first use (`smtp_metrics()`, `worker_metrics()`), not at import: prometheus_client chooses between in-process
values and multiprocess files (PROMETHEUS_MULTIPROC_DIR) when a metric is made, and `python -m smtp` with
several processes sets that directory in the parent just before it forks the servers. Updating a metric is
an in-process increment under a lock: nothing here reaches Redis or the database. Tests read value deltas
from the real endpoints rather than swapping registries (several servers in one test process share them).

The dashboard's gauges are read from the database and Redis at scrape time (app/services/metrics.py).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

# received -> delivered spans seconds (a local sink) to days (retries): buckets up to the 5-day lifetime.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400)
# A spool group commit takes a few milliseconds on a healthy disk.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True)
class SmtpMetrics:
    connections_open: Gauge
    connections: Counter
    accepted: Counter
    refused: Counter
    spool_commit: Histogram


@dataclass(frozen=True)
class WorkerMetrics:
    deliveries: Counter
    delivery_latency: Histogram
    dkim: Counter
    mx_cache_hits: Counter
    mx_lookups: Counter
    heartbeat: Gauge


def _value_class_from_environment() -> None:
    # prometheus_client read PROMETHEUS_MULTIPROC_DIR when it was imported, before the parent set it.
    values.ValueClass = values.get_value_class()


@functools.cache
def smtp_metrics() -> SmtpMetrics:
    _value_class_from_environment()
    return SmtpMetrics(
        connections_open=Gauge("mailferry_smtp_connections_open", "Inbound SMTP sessions open now",
                               multiprocess_mode="livesum"),
        connections=Counter("mailferry_smtp_connections", "Inbound SMTP connections accepted"),
        accepted=Counter("mailferry_smtp_messages_accepted", "Messages answered 250 at the end of DATA"),
        refused=Counter("mailferry_smtp_refused", "Replies refusing a recipient or a message, by reason",
                        ["reason"]),
        spool_commit=Histogram("mailferry_smtp_spool_commit_seconds",
                               "Time of one spool transaction (a group commit of accepted messages)",
                               buckets=COMMIT_BUCKETS),
    )


@functools.cache
def worker_metrics() -> WorkerMetrics:
    _value_class_from_environment()
    return WorkerMetrics(
        deliveries=Counter("mailferry_deliveries", "Delivery attempts settled, by outcome and route",
                           ["outcome", "route"]),
        delivery_latency=Histogram("mailferry_delivery_latency_seconds",
                                   "Time from a message's arrival to its delivery to a destination",
                                   buckets=LATENCY_BUCKETS),
        dkim=Counter("mailferry_dkim_messages", "Delivered copies with and without our DKIM signature",
                     ["signed"]),
        mx_cache_hits=Counter("mailferry_mx_cache_hits", "MX answers served from the cache"),
        mx_lookups=Counter("mailferry_mx_lookups", "MX lookups sent to DNS"),
        heartbeat=Gauge("mailferry_worker_heartbeat_timestamp_seconds", "When this worker last beat (epoch)"),
    )


def route_label(via: str) -> str:
    """`mx:<host>` -> mx (hosts would be a label per destination), `relay:<name>` -> the relay's name."""
    kind, _, name = via.partition(":")
    if kind == "relay":
        return name
    return kind or "none"


def exposition_registry() -> CollectorRegistry:
    """What an endpoint serves: the default registry, or with PROMETHEUS_MULTIPROC_DIR set every process's
    files summed (the parent of several SMTP servers serves those)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry
