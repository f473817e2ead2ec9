"""Forgot your password: ask for a link (/login/forgot), then choose a new password with it (/login/reset/...)."""

from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for

from app.extensions import get_db, get_redis, get_settings
from app.services import password_reset
from app.services.errors import ServiceError
from app.services.login_limit import Wait

from . import bp
from .forms import ForgotForm, ResetForm


@bp.route("/login/forgot", methods=["GET", "POST"])
def forgot_password():
    form = ForgotForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form, asked=False)
    with get_db().session() as s:
        asked = password_reset.request_reset(s, get_settings(), get_redis(), form.email.data, request.remote_addr or "")
    if asked.client_wait:
        wait = Wait(asked.client_wait, "address")
        form.form_errors.append(f"Too many reset requests from your address. Try again in {wait.human}.")
        response = make_response(render_template("auth/forgot.html", form=form, asked=False), 429)
        response.headers["Retry-After"] = str(wait.seconds)
        return response
    return render_template("auth/forgot.html", form=form, asked=True, email=form.email.data.strip())


@bp.route("/login/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    form = ResetForm()
    with get_db().session() as s:
        try:
            user = password_reset.user_for_link(s, get_settings(), token)
        except ServiceError as exc:
            return render_template("auth/reset.html", form=form, error=exc.message), 400
        if form.validate_on_submit():
            try:
                password_reset.reset_password(s, get_settings(), token, form.new_password.data,
                                              request.remote_addr or "")
            except ServiceError as exc:
                form.new_password.errors.append(exc.message)
            else:
                flash("Your password was changed. Log in with it.")
                return redirect(url_for("auth.login"))
        return render_template("auth/reset.html", form=form, error=None, email=user.email)
