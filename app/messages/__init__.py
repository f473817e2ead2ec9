"""Message log per domain, message detail, retry now / give up, the admin's failed queue."""

from flask import Blueprint

bp = Blueprint("messages", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
