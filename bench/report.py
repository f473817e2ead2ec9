"""Ratios to the baselines of the same run, the targets of issue 6, the stdout table and the JSON file."""

from __future__ import annotations

import json
import os
import time

from .stats import ratio

RATIO_FIGURES = {
    "accept_per_s": lambda r: r["throughput"]["accept_per_s"],
    "e2e_per_s": lambda r: r["throughput"]["e2e_per_s"],
    "accept_p99_ms": lambda r: r["latency"]["accept_latency_ms"]["p99"],
    "e2e_p95_ms": lambda r: r["latency"]["e2e_latency_ms"]["p95"],
    "paced_e2e_p95_ms": lambda r: (r.get("paced") or {}).get("e2e_latency_ms", {}).get("p95"),
    "cpu_ms_per_message": lambda r: r["throughput"]["cpu_ms_per_message"],
    "rss_total_bytes": lambda r: sum(r["rss_bytes"].values()) or None,
}


def add_ratios(runs: list[dict]) -> None:
    """Every figure of every run as a ratio to the loopback and Postfix runs of the same size."""
    for run in runs:
        run["ratios"] = {}
        for base_name in ("loopback", "postfix"):
            base = next((r for r in runs if r["path"] == base_name and r["size"] == run["size"]), None)
            if base is None or base is run:
                continue
            run["ratios"][f"vs_{base_name}"] = {k: ratio(f(run), f(base)) for k, f in RATIO_FIGURES.items()}


def authentication(runs: list[dict]) -> dict | None:
    """The run with inbound authentication and rspamd on next to the same run with both off (same database,
    size): accept/s (smtp-source), accept p99 (our load generator), and rspamd's own CPU per message."""
    auth = next((r for r in runs if r["path"].endswith("+auth+rspamd")), None)
    if auth is None:
        return None
    base = next((r for r in runs if r["path"] == auth["path"].removesuffix("+auth+rspamd") and r["size"] == auth["size"]),
                None)

    def figures(run: dict | None) -> dict | None:
        if run is None:
            return None
        by_process = run["throughput"].get("cpu_ms_per_message_by_process") or {}
        return {"path": run["path"], "accept_per_s": run["throughput"]["accept_per_s"],
                "accept_p99_ms": run["latency"]["accept_latency_ms"]["p99"],
                "smtp_cpu_ms_per_message": by_process.get("smtp"),
                "rspamd_cpu_ms_per_message": by_process.get("rspamd")}

    on, off = figures(auth), figures(base)
    return {"size": auth["size"], "on": on, "off": off,
            "accept_per_s_ratio": ratio(on["accept_per_s"], off["accept_per_s"]) if off else None,
            "accept_p99_ratio": ratio(on["accept_p99_ms"], off["accept_p99_ms"]) if off else None}


def targets(runs: list[dict], idle: dict | None, soak: dict | None = None) -> list[dict]:
    """Issue 6's targets for each Mailferry run of 4 KB messages, and the idle-connection one."""
    checks = []
    for run in runs:
        if not run["path"].startswith("mailferry") or run["size"] > 8192:
            continue
        postfix = run["ratios"].get("vs_postfix", {}).get("e2e_per_s")
        paced = (run.get("paced") or {}).get("e2e_latency_ms", {}).get("p95")
        for name, value, goal, ok in (
            ("accept msg/s", run["throughput"]["accept_per_s"], ">= 1000", run["throughput"]["accept_per_s"] >= 1000),
            (f"accept p99 ms @{run['concurrency']}", run["latency"]["accept_latency_ms"]["p99"], "<= 50",
             (run["latency"]["accept_latency_ms"]["p99"] or 1e9) <= 50),
            ("e2e msg/s", run["throughput"]["e2e_per_s"], ">= 500", run["throughput"]["e2e_per_s"] >= 500),
            ("paced e2e p95 ms", paced, "<= 1000", paced is not None and paced <= 1000),
            ("e2e vs postfix", postfix, ">= 0.5, then 1.0", postfix is not None and postfix >= 0.5),
        ):
            checks.append({"run": run["path"], "target": name, "value": value, "goal": goal, "met": ok})
    if idle and idle.get("per_connection_bytes") is not None:
        mb = idle["growth_bytes"] / 1e6
        checks.append({"run": "mailferry", "target": f"RSS growth, {idle['connections']} idle connections (MB)",
                       "value": round(mb, 1), "goal": "< 50", "met": mb < 50})
    if soak:
        growth = soak["growth_after_warmup_bytes"] / soak["rss_warm_bytes"] if soak["rss_warm_bytes"] else None
        checks.append({"run": soak["path"], "target": f"SMTP RSS growth over a {soak['seconds']:.0f} s soak after warm-up (%)",
                       "value": None if growth is None else round(100 * growth, 1), "goal": "flat (<= 10)",
                       "met": growth is not None and growth <= 0.10})
    return checks


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _size(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 else f"{n}B"


def table(result: dict) -> str:
    head = ("path", "size", "accept/s", "e2e/s", "acc p50/p95/p99 ms", "e2e p50/p95/p99 ms", "paced p95",
            "cpu ms/msg", "e2e x loop", "e2e x pfx", "acc p99 x pfx")
    rows = [head]
    for run in result["runs"]:
        acc, e2e = run["latency"]["accept_latency_ms"], run["latency"]["e2e_latency_ms"]
        paced = (run.get("paced") or {}).get("e2e_latency_ms", {}).get("p95")
        vs_loop, vs_pf = run["ratios"].get("vs_loopback", {}), run["ratios"].get("vs_postfix", {})
        tp = run["throughput"]
        rows.append((
            run["path"], _size(run["size"]), _fmt(tp["accept_per_s"]),
            _fmt(tp["e2e_per_s"]) + ("" if tp["complete"] else f" ({tp['arrived']}/{tp['messages']})"),
            "/".join(_fmt(acc[k], 1) for k in ("p50", "p95", "p99")),
            "/".join(_fmt(e2e[k], 1) for k in ("p50", "p95", "p99")),
            _fmt(paced, 1), _fmt(tp["cpu_ms_per_message"], 2),
            _fmt(vs_loop.get("e2e_per_s"), 3), _fmt(vs_pf.get("e2e_per_s"), 3), _fmt(vs_pf.get("accept_p99_ms"), 2),
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    machine = result["machine"]
    out = [f"Mailferry bench {result['started_at']} on {machine['cores']} cores ({machine['cpu']}), "
           f"load avg {machine['loadavg']}: a small machine shared with the load generator and the sinks.",
           f"{result['params']['messages']} messages per throughput run, {result['params']['concurrency']} "
           f"concurrent connections; latencies with our load generator; 'paced' offers "
           f"{result['params']['pace']:.0%} of the path's measured end-to-end rate.", ""] + lines
    idle = result.get("idle")
    if idle:
        out += ["", f"idle connections: {idle['connections']} open -> SMTP server RSS {idle['before_bytes'] / 1e6:.1f} MB"
                    f" -> {idle['after_bytes'] / 1e6:.1f} MB, {idle['per_connection_bytes'] / 1024:.1f} KB per connection"
                if idle.get("per_connection_bytes") is not None else f"idle connections: {idle.get('error')}"]
    for run in result["runs"]:
        stages = run["latency"].get("stages")
        if stages:
            enq, dlv = stages["received_to_enqueued_ms"], stages["received_to_delivered_ms"]
            out.append(f"stages {run['path']} {_size(run['size'])} (latency run, from the database): received -> "
                       f"enqueued p50/p95 {_fmt(enq['p50'], 1)}/{_fmt(enq['p95'], 1)} ms, received -> delivered "
                       f"p50/p95 {_fmt(dlv['p50'], 1)}/{_fmt(dlv['p95'], 1)} ms, deliveries {stages['states']}")
    for run in result["runs"]:
        roles = run["throughput"].get("cpu_ms_per_message_by_process") or {}
        if len(roles) > 1:
            out.append(f"CPU ms per message {run['path']} {_size(run['size'])}: "
                       + ", ".join(f"{k} {v:.2f}" for k, v in roles.items()))
    soak = result.get("soak")
    if soak:
        out.append(f"soak: {soak['seconds']:.0f} s at {soak['offered_per_s']} msg/s ({soak['accepted']} accepted, "
                   f"{soak['failed']} failed): SMTP server RSS {soak['rss_start_bytes'] / 1e6:.1f} MB at start, "
                   f"{soak['rss_warm_bytes'] / 1e6:.1f} MB after warm-up, {soak['rss_end_bytes'] / 1e6:.1f} MB at the end, "
                   f"max {soak['rss_max_bytes'] / 1e6:.1f} MB")
    for run in result["runs"]:
        if run["rss_bytes"]:
            groups: dict[str, list[int]] = {}
            for label, rss in run["rss_bytes"].items():
                groups.setdefault(label.rsplit("[", 1)[0], []).append(rss)
            parts = [f"{k} {len(v)}x {sum(v) / len(v) / 1e6:.1f} MB" for k, v in groups.items()]
            out.append(f"RSS after {run['path']} {_size(run['size'])}: " + ", ".join(parts))
    auth = result.get("authentication")
    if auth:
        on, off = auth["on"], auth["off"]
        out += ["", f"authentication + rspamd ({_size(auth['size'])}): {on['path']}: accept/s {_fmt(on['accept_per_s'])},"
                    f" accept p99 {_fmt(on['accept_p99_ms'], 1)} ms, smtp CPU {_fmt(on['smtp_cpu_ms_per_message'], 2)}"
                    f" ms/msg, rspamd CPU {_fmt(on['rspamd_cpu_ms_per_message'], 2)} ms/msg"]
        if off:
            out.append(f"  same run without ({off['path']}): accept/s {_fmt(off['accept_per_s'])}, accept p99 "
                       f"{_fmt(off['accept_p99_ms'], 1)} ms, smtp CPU {_fmt(off['smtp_cpu_ms_per_message'], 2)} ms/msg"
                       f" (with/without: accept/s x{_fmt(auth['accept_per_s_ratio'], 2)}, p99 x{_fmt(auth['accept_p99_ratio'], 2)})")
    if result["targets"]:
        out += ["", "targets (issue 6):"]
        out += [f"  [{'met' if c['met'] else 'MISS'}] {c['run']}: {c['target']} = {_fmt(c['value'], 3 if isinstance(c['value'], float) and abs(c['value']) < 10 else 1)} (goal {c['goal']})"
                for c in result["targets"]]
    for reason in result["skipped"]:
        out.append(f"skipped: {reason}")
    for problem in result["errors"]:
        out.append(f"error: {problem}")
    return "\n".join(out)


def write_json(result: dict, directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    return path
