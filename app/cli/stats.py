"""flask stats [--days N] [--json]: how mail has been leaving (mailferry.delivery_stats)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import get_db, get_redis, get_settings
from mailferry.delivery_stats import delivery_stats

from .output import cli_command, emit


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def stats_lines(data: dict) -> list[str]:
    d, k, mx = data["direct"], data["dkim"], data["mx"]
    lines = [
        f"Delivery mode: {data['mode']}    (last {data['days']} days, since {data['since']})",
        f"Direct: {d['sent']} sent, {d['failed']} failed ({d['deferred']} deferred, {d['bounced']} bounced)",
    ]
    if data["not_sent"]["deferred"] or data["not_sent"]["bounced"]:
        lines.append(f"Not sent (no MX, limits, no relay): {data['not_sent']['deferred']} deferred, "
                     f"{data['not_sent']['bounced']} bounced")
    lines.append(f"DKIM: {k['signed']} signed, {k['unsigned']} unsigned")
    if mx.get("error"):
        lines.append(f"MX: Redis unreachable ({mx['error']})")
    else:
        lines.append(f"MX: {mx['lookups']} DNS lookups, {mx['cache_hits']} cache hits "
                     f"(hit rate {_rate(mx['hit_rate'])}), {mx['cache_size']} domains cached")
    if data["relays"]:
        lines += ["", f"{'relay':<20} {'host':<28} {'sent':>7} {'failed':>7}  circuit"]
        for r in data["relays"]:
            circuit = r["circuit"]["state"]
            if circuit == "open":
                circuit += f" until {r['circuit']['open_until']}"
            lines.append(f"{r['name']:<20} {r['host'] or '(not configured)':<28} {r['sent']:>7} {r['failed']:>7}  "
                         f"{circuit}")
    if data["domains"]:
        lines += ["", f"{'destination domain':<32} {'attempts':>8} {'success':>8} {'direct':>8} {'relay':>8}"]
        for x in data["domains"]:
            lines.append(f"{x['domain']:<32} {x['attempts']:>8} {_rate(x['success_rate']):>8} "
                         f"{_rate(x['direct_success_rate']):>8} {_rate(x['relay_success_rate']):>8}")
    return lines


@click.command("stats")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650), help="How far back to count.")
@cli_command
@with_appcontext
def stats(days: int, as_json: bool) -> None:
    """Delivery figures: mode, direct and per-relay outcomes, circuits, DKIM, MX cache, per-domain success."""
    data = delivery_stats(get_db(), get_redis(), get_settings(), days=days)
    emit(as_json, data, stats_lines(data))
