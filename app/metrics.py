"""GET /metrics: Prometheus text for an admin's API token (Authorization: Bearer) or a METRICS_ALLOWED_IPS client."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from .extensions import get_db, get_redis, get_settings
from .services.metrics import address_allowed, admin_token, exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    if not _allowed():
        return jsonify(error={"code": "forbidden", "message": "metrics need an admin's API token "
                                                              "(Authorization: Bearer) or a METRICS_ALLOWED_IPS address"}), 403
    body = exposition(get_db(), get_redis(), get_settings())
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _allowed() -> bool:
    if address_allowed(request.remote_addr or "", get_settings().METRICS_ALLOWED_IPS):
        return True
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(secret.strip()) and admin_token(get_db(), secret.strip())
