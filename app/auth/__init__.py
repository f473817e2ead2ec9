"""Accounts: login, logout, sign-up, password change, two-factor authentication, API tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import two_factor_views, views  # noqa: E402,F401  (routes attach to bp)
