"""A domain's quarantine: held messages with release and delete."""

from flask import Blueprint

bp = Blueprint("quarantine", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
