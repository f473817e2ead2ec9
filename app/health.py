"""/healthz: the process answers (liveness, touches nothing). /readyz: it can do its work (readiness)."""

from flask import Blueprint, jsonify

from .extensions import get_db, get_redis, get_settings
from .services.readiness import readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    report = readiness(get_db(), get_redis(), get_settings().WORKER_HEARTBEAT_MAX_AGE)
    return jsonify(report.to_dict()), 200 if report.ready else 503
