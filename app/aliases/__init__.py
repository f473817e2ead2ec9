"""Aliases of a domain: create, edit, enable/disable, delete; catch-all; counters."""

from flask import Blueprint

bp = Blueprint("aliases", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
