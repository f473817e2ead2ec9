"""Stats: per domain and overall, last 30 days as a server-side SVG chart, queue depth, routes, MX cache."""

from flask import Blueprint

bp = Blueprint("stats", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
