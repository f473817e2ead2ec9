"""The audit log page: each owner's own events, every event for admins."""

from flask import Blueprint

bp = Blueprint("audit", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
