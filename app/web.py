"""Shared bits of the HTML views: service errors onto forms, the bare CSRF form for buttons, error pages."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError

from .services.errors import NOT_FOUND, ServiceError


def apply_error(form: FlaskForm, exc: ServiceError) -> None:
    """Show a service refusal next to the field it is about, or above the form."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = list(field.errors) + [exc.message]
    else:
        form.form_errors.append(exc.message)


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        status = 404 if exc.code == NOT_FOUND else exc.http_status
        return render_template("error.html", status=status, message=exc.message), status

    @app.errorhandler(CSRFError)
    def csrf_failed(_exc):
        return render_template("error.html", status=400,
                               message="The form expired or came from another site. Reload the page and try again."), 400

    @app.errorhandler(404)
    def not_found(_exc):
        if request.path.startswith("/api/"):  # no route matched, so the API blueprint's handler never ran
            return jsonify(error={"code": "not_found", "message": f"no API route {request.path}"}), 404
        return render_template("error.html", status=404, message="Not found."), 404

    @app.errorhandler(403)
    def forbidden(_exc):
        return render_template("error.html", status=403, message="You may not do that."), 403


# No inline script or style anywhere: the templates load app/static/*.js, so an injected <script> or
# on*= attribute never runs even if escaping failed somewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HSTS = "max-age=31536000"


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config["SESSION_COOKIE_SECURE"]:  # served over HTTPS: browsers stay on it
        headers.setdefault("Strict-Transport-Security", HSTS)
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
    return response


def route_label(route: str) -> str:
    """'mx:mx1.gmail.com' -> 'MX mx1.gmail.com', 'relay:sendgrid' -> 'relay sendgrid'."""
    kind, _, name = route.partition(":")
    return f"{'MX' if kind == 'mx' else kind} {name}".strip() if name else route


def utc_time(value) -> str:
    """A datetime, or the ISO text the JSON views make of one, as the dashboard shows times: YYYY-MM-DD HH:MM UTC."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.removesuffix("Z"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M") + " UTC"
