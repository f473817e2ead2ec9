"""Bearer-token authentication and JSON errors for every /api/v1 route."""

from __future__ import annotations

from flask import g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.auth.session_user import SessionUser
from app.extensions import get_db
from app.services.errors import ServiceError
from app.services.tokens import TokenRefused, allows, authenticate_token

from . import bp

PUBLIC_ENDPOINTS = {"api.openapi"}


def error(status: int, code: str, message: str, field: str | None = None):
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return jsonify(error=body), status


@bp.before_request
def authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return error(401, "unauthorized", "send an API token as 'Authorization: Bearer <token>'")
    try:
        with get_db().session() as s:
            token = authenticate_token(s, secret.strip())
            g.api_actor = SessionUser(token.user, request.remote_addr or "")
            g.api_token_expires_at = token.expires_at
            read_only = not allows(token, request.method)
    except TokenRefused as refused:
        if refused.reason == "expired":
            return error(401, "expired", f"the API token expired at {refused.expires_at.isoformat()}Z; "
                                         "create a new one on the Account page")
        return error(401, "unauthorized", "the API token is unknown or revoked")
    if read_only:
        return error(403, "read_only", f"this API token is read-only: it may only GET and HEAD, not {request.method}")
    return None


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError):
    return error(exc.http_status, exc.code, exc.message, exc.field)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


def api_actor() -> SessionUser:
    return g.api_actor


def api_token_expires_at():
    """When the token of this request expires (None: never): a token it creates may not outlive it."""
    return g.api_token_expires_at
