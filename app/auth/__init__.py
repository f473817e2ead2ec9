"""Accounts: login, logout, sign-up, password change and reset, two-factor authentication, API tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import reset_views, two_factor_views, views  # noqa: E402,F401  (routes attach to bp)
