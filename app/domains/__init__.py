"""Domains: list and add, the records to publish, live verification, DKIM keys."""

from flask import Blueprint

bp = Blueprint("domains", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
