from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    with get_db().session() as s:
        s.execute(text("SELECT 1"))
    return jsonify(status="ok")
