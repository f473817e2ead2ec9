from __future__ import annotations

from flask import render_template
from flask_login import login_required

from app.extensions import actor, get_db, get_redis, get_settings
from app.services import domains, stats
from mailferry.delivery_stats import delivery_stats

from . import bp
from .chart import line_chart


def _page(title: str, domain_id: int | None = None, domain=None):
    with get_db().session() as s:
        series = stats.daily_series(s, actor(), domain_id)
        return render_template("stats/show.html", title=title, domain=domain, series=series,
                               totals=stats.totals(series), chart=line_chart(series, stats.SERIES),
                               queue=stats.queue_depth(s, actor(), domain_id),
                               mx=stats.mx_cache(get_redis()) if actor().is_admin else None,
                               delivery=_delivery() if actor().is_admin and domain_id is None else None)


def _delivery() -> dict:
    """Routes, relays and their circuits, per destination success: system-wide, so admins only."""
    return delivery_stats(get_db(), get_redis(), get_settings(), days=30)


@bp.get("/stats")
@login_required
def overview():
    return _page("All domains")


@bp.get("/domains/<int:domain_id>/stats")
@login_required
def domain(domain_id: int):
    with get_db().session() as s:
        found = domains.get_domain(s, domain_id, actor())
    return _page(found.name, found.id, found)
