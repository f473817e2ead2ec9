from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from app.extensions import actor, get_db, get_redis, get_settings
from app.services import mailboxes, queue_status, server_records, users
from app.services.errors import NOT_FOUND, ServiceError
from app.web import apply_error
from mailferry.models import User

from . import bp
from .forms import ROLE_CHOICES, NewUserForm, UserForm


@bp.get("/users")
def list_users():
    return _users_page(NewUserForm())


def _users_page(form: NewUserForm, status: int = 200, error: str | None = None):
    with get_db().session() as s:
        rows = users.list_users(s, actor())
        return render_template("admin/users.html", users=rows, form=form, error=error,
                               roles=[value for value, _label in ROLE_CHOICES]), status


@bp.post("/users")
def create_user():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                user = users.create_user(s, form.email.data, form.password.data, form.role.data, actor())
                mailboxes.verify_own_address(s, user)  # an admin vouches for the address they typed
                flash(f"{user.email} created as {user.role}.")
            return redirect(url_for("admin.list_users"))
        except ServiceError as exc:
            apply_error(form, exc)
    return _users_page(form, 400)


@bp.post("/users/<int:user_id>")
def update_user(user_id: int):
    form = UserForm()
    if not form.validate_on_submit():
        return _users_page(NewUserForm(formdata=None), 400, "choose a role and an account state")
    try:
        with get_db().session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise ServiceError(NOT_FOUND, f"no user #{user_id}")
            users.update_user(s, user, actor(), role=form.role.data, active=form.active.data == "1")
            flash(f"{user.email}: {user.role}, {'active' if user.active else 'deactivated'}.")
    except ServiceError as exc:
        if exc.code == NOT_FOUND:
            raise
        return _users_page(NewUserForm(formdata=None), 400, exc.message)
    return redirect(url_for("admin.list_users"))


@bp.get("/queue")
def queue():
    with get_db().session() as s:
        status = queue_status.queue_status(s, get_settings(), get_redis(), recent=20)
        return render_template("admin/queue.html", status=status)


@bp.get("/server")
def server():
    settings = get_settings()
    return render_template("admin/server.html", hostname=settings.SMTP_HOSTNAME,
                           records=server_records.server_records(settings), spam_filter=bool(settings.RSPAMD_URL))
