"""JSON API under /api/v1: bearer tokens, errors as {"error": {"code", "message"}}, OpenAPI document."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from . import auth, views  # noqa: E402,F401  (hooks and routes attach to bp)
