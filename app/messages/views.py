from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import actor, get_db, get_rq_queue
from app.services import domains, message_log
from app.services.errors import INVALID, ServiceError
from mailferry.models import Domain

from . import bp

PAGE = 100


@bp.get("/domains/<int:domain_id>/messages")
@login_required
def index(domain_id: int):
    search = request.args.get("q", "").strip()
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        rows = message_log.list_messages(s, actor(), domain_id=domain.id, search=search or None, limit=PAGE)
        per_message = message_log.deliveries_of(s, rows, actor(), domain.id)
        return render_template("messages/index.html", domain=domain, messages=rows, deliveries=per_message, q=search)


@bp.get("/messages/<message_id>")
@login_required
def show(message_id: str):
    with get_db().session() as s:
        message = message_log.get_message(s, message_id, actor())
        visible = message_log.deliveries(s, message, actor())
        history = message_log.attempts(s, [d.id for d in visible])
        domains = [s.get(Domain, i) for i in sorted({d.domain_id for d in visible if d.domain_id})]
        return render_template("messages/show.html", message=message, deliveries=visible, history=history,
                               domains=domains)


@bp.post("/messages/<message_id>/retry")
@login_required
def retry(message_id: str):
    with get_db().session() as s:
        message_log.retry_now(s, message_log.get_message(s, message_id, actor()), actor())
    queued = message_log.dispatch_now(get_rq_queue(), message_id)
    flash("Retrying now." if queued else "Marked due; the worker will pick it up within a minute.")
    return redirect(url_for("messages.show", message_id=message_id))


@bp.post("/messages/<message_id>/give-up")
@login_required
def give_up(message_id: str):
    with get_db().session() as s:
        message_log.give_up(s, message_log.get_message(s, message_id, actor()), actor())
    flash("Stopped retrying.")
    return redirect(url_for("messages.show", message_id=message_id))


@bp.get("/admin/failed")
@login_required
def failed():
    if not current_user.is_admin:
        abort(404)
    with get_db().session() as s:
        try:
            rows, error = message_log.failed_messages(s, get_rq_queue(), actor()), None
        except ServiceError as exc:
            rows, error = [], exc.message
        return render_template("messages/failed.html", rows=rows, error=error,
                               bounces=message_log.recent_bounces(s, actor()))


@bp.post("/admin/failed/<message_id>/requeue")
@login_required
def requeue(message_id: str):
    if not current_user.is_admin:
        abort(404)
    try:
        with get_db().session() as s:
            message_log.requeue(s, get_rq_queue(), message_id, actor())
    except ServiceError as exc:
        if exc.code != INVALID:
            raise
        flash(exc.message)  # its content is gone (RETENTION_DAYS): say so on the list
        return redirect(url_for("messages.failed"))
    queued = message_log.dispatch_now(get_rq_queue(), message_id)
    flash(f"Message {message_id} requeued." + ("" if queued else " Redis is down: the worker picks it up when it is back."))
    return redirect(url_for("messages.failed"))
