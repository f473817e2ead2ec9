"""Admin pages: users (create, role, activate/deactivate), the queue and the server setup. Owners get 404 here."""

from flask import Blueprint, abort
from flask_login import current_user, login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def admins_only():
    if not current_user.is_admin:
        abort(404)


from . import views  # noqa: E402,F401  (routes attach to bp)
