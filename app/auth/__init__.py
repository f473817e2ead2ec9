"""Accounts: login, logout, sign-up, password change, API tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import views  # noqa: E402,F401  (routes attach to bp)
