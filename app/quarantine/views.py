from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import login_required

from app.extensions import actor, get_db, get_rq_queue, get_settings
from app.services import domains, message_log, quarantine

from . import bp


@bp.get("/domains/<int:domain_id>/quarantine")
@login_required
def index(domain_id: int):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        return render_template("quarantine/index.html", domain=domain, held=quarantine.list_quarantine(s, domain, actor()),
                               days=get_settings().QUARANTINE_DAYS)


@bp.post("/domains/<int:domain_id>/quarantine/<message_id>/release")
@login_required
def release(domain_id: int, message_id: str):
    with get_db().session() as s:
        domains.get_domain(s, domain_id, actor())
        quarantine.release(s, quarantine.get_held(s, message_id, actor(), domain_id), actor())
    queued = message_log.dispatch_now(get_rq_queue(), message_id)
    flash(f"Message {message_id} released: it is forwarded as usual." +
          ("" if queued else " Redis is down: the worker picks it up when it is back."))
    return redirect(url_for("quarantine.index", domain_id=domain_id))


@bp.post("/domains/<int:domain_id>/quarantine/<message_id>/delete")
@login_required
def delete(domain_id: int, message_id: str):
    with get_db().session() as s:
        domains.get_domain(s, domain_id, actor())
        quarantine.delete_held(s, quarantine.get_held(s, message_id, actor(), domain_id), actor())
    flash(f"Message {message_id} deleted.")
    return redirect(url_for("quarantine.index", domain_id=domain_id))
