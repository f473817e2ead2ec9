from __future__ import annotations

from flask import render_template, request
from flask_login import login_required

from app.extensions import actor, get_db
from app.services import audit
from app.services.errors import ServiceError

from . import bp

PAGE = 50


@bp.get("/audit")
@login_required
def index():
    action = request.args.get("action", "").strip()
    try:
        with get_db().session() as s:
            page = audit.list_events(s, actor(), action=action or None, before=audit.parse_cursor(
                request.args.get("before")), limit=PAGE)
            return render_template("audit/index.html", page=page, action=action, actions=audit.ACTIONS, error=None)
    except ServiceError as exc:
        return render_template("audit/index.html", page=None, action="", actions=audit.ACTIONS,
                               error=exc.message), 400
