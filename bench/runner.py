"""The measurements for one path and one message size: throughput with smtp-source into smtp-sink, then latency
with our load generator into the counting sink, then end-to-end latency at a paced rate below capacity."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .loadgen import run_load
from .paths import SENDER, Path
from .postfix import SmtpSink, smtp_source
from .procs import tree_rss, wait_until
from .sink import CountingSink
from .stats import latency_ms


@dataclass(frozen=True)
class Load:
    messages: int
    concurrency: int
    size: int
    latency_messages: int
    paced_seconds: float
    pace: float  # fraction of the measured end-to-end throughput offered in the paced phase
    reuse: bool
    drain_timeout: float


def _drain_wait(count, expected: int, started: float, timeout: float) -> tuple[int, float]:
    """Wait until `count()` reaches expected; return (arrived, seconds from started to the last arrival seen)."""
    seen, last = count(), time.monotonic()
    deadline = last + timeout
    while seen < expected and time.monotonic() < deadline:
        time.sleep(0.005)
        now_seen = count()
        if now_seen != seen:
            seen, last = now_seen, time.monotonic()
    return seen, max(last - started, 1e-9)


def throughput(path: Path, load: Load, workdir: str) -> dict:
    """smtp-source -> path -> smtp-sink: acceptance and end-to-end messages/s, CPU per message."""
    sink = SmtpSink(workdir, path.sink_port).start()
    try:
        cpu0 = path.cpu_by_role()
        started = time.monotonic()
        accept_s = smtp_source(path.entry_port, load.messages, load.concurrency, load.size, SENDER,
                               path.recipients[0], reuse=load.reuse,
                               message_file=path.source_file(load.size, workdir))
        arrived, e2e_s = _drain_wait(sink.count, load.messages, started, load.drain_timeout)
        if not path.forwards:
            e2e_s = accept_s
        cpu1 = path.cpu_by_role()
        by_role = {k: round((v - cpu0.get(k, 0.0)) * 1000 / load.messages, 2) for k, v in cpu1.items()}
    finally:
        sink.stop()
    return {
        "messages": load.messages,
        "accept_per_s": round(load.messages / accept_s, 1),
        "arrived": arrived,
        "e2e_per_s": round(arrived / e2e_s, 1),
        "complete": arrived >= load.messages,
        "cpu_ms_per_message": round(sum(by_role.values()), 2) if by_role else None,
        "cpu_ms_per_message_by_process": by_role,
    }


def latency(path: Path, load: Load, messages: int, rate: float = 0.0) -> dict:
    """Our load generator -> path -> counting sink: acceptance and end-to-end latency percentiles."""
    sink = CountingSink(path.sink_port).start()
    since = time.time()
    since_utc = datetime.fromtimestamp(since, timezone.utc).replace(tzinfo=None)
    try:
        result = asyncio.run(run_load("127.0.0.1", path.entry_port, messages, load.concurrency, load.size, SENDER,
                                      path.recipients, rate=rate, reuse=load.reuse,
                                      message_set=path.message_set(load.size)))
        wait_until(lambda: sink.count(since) >= result.sent, load.drain_timeout, 0.05)
    finally:
        sink.stop()
    e2e = [arrived - sent for sent, arrived in sink.arrivals if sent >= since]
    return {
        "messages": messages,
        "offered_per_s": round(rate, 1) if rate else None,
        "accepted": result.sent,
        "failed": result.failed,
        "errors": result.errors,
        "accept_per_s": round(result.throughput, 1),
        "accept_latency_ms": latency_ms(result.latencies),
        "arrived": len(e2e),
        "e2e_latency_ms": latency_ms(e2e),
        "stages": path.stages(since_utc),
    }


def measure(path: Path, load: Load, workdir: str) -> dict:
    out = {"path": path.name, "size": load.size, "concurrency": load.concurrency}
    out["throughput"] = throughput(path, load, workdir)
    out["latency"] = latency(path, load, load.latency_messages)
    e2e_rate = out["throughput"]["e2e_per_s"]
    if load.paced_seconds > 0 and e2e_rate > 0:
        rate = e2e_rate * load.pace
        out["paced"] = latency(path, load, max(10, int(rate * load.paced_seconds)), rate=rate)
    out["rss_bytes"] = path.rss()
    return out


def soak(path, seconds: float, rate: float, load: Load, workdir: str, interval: float = 5.0) -> dict:
    """A paced load for `seconds` into smtp-sink, sampling the SMTP server's RSS every `interval` seconds."""
    samples: list[list[float]] = []

    async def run() -> object:
        started = time.monotonic()

        async def sample() -> None:
            while True:
                samples.append([round(time.monotonic() - started, 1), tree_rss(path.smtp_pids())])
                await asyncio.sleep(interval)

        sampler = asyncio.create_task(sample())
        try:
            return await run_load("127.0.0.1", path.entry_port, max(1, int(rate * seconds)), load.concurrency,
                                  load.size, SENDER, path.recipients, rate=rate, reuse=load.reuse,
                                  message_set=path.message_set(load.size))
        finally:
            sampler.cancel()
            samples.append([round(time.monotonic() - started, 1), tree_rss(path.smtp_pids())])

    sink = SmtpSink(workdir, path.sink_port).start()
    try:
        result = asyncio.run(run())
    finally:
        sink.stop()
    warm = next((rss for t, rss in samples if t >= seconds / 10), samples[0][1])
    rss = [r for _, r in samples]
    return {"path": path.name, "seconds": seconds, "offered_per_s": round(rate, 1), "size": load.size,
            "accepted": result.sent, "failed": result.failed, "rss_samples": samples,
            "rss_start_bytes": rss[0], "rss_warm_bytes": warm, "rss_end_bytes": rss[-1], "rss_max_bytes": max(rss),
            "growth_after_warmup_bytes": rss[-1] - warm}
