"""Destinations (verified mailboxes): the owner's list with resend, remove and re-enable, admins' mark-verified,
and the public pages behind the links we mail (confirm a destination, re-enable a suspended one)."""

from flask import Blueprint

bp = Blueprint("destinations", __name__, url_prefix="/destinations")

from . import views  # noqa: E402,F401  (routes attach to bp)
