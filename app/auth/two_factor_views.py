"""Two-factor authentication in the dashboard: the login's second step, set-up, recovery codes, switching off,
and REQUIRE_ADMIN_2FA sending an admin without it to the set-up page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import get_db, get_settings
from app.services import audit, two_factor
from app.services.errors import INVALID, ServiceError
from app.web import apply_error
from mailferry.models import User

from . import bp, pending_login
from .forms import CodeForm, DisableTwoFactorForm, PasswordForm, SetupCodeForm, TokenForm
from .views import _account_page, _limiter, _safe_next, _start_session, too_many

# What an admin without two-factor authentication may still reach when REQUIRE_ADMIN_2FA is on.
ENROLMENT_ENDPOINTS = {"auth.two_factor_setup", "auth.logout", "auth.login", "auth.login_two_factor", "static",
                       "health.healthz", "health.readyz", "auth.forgot_password", "auth.reset_password"}


@bp.before_app_request
def require_admin_two_factor():
    # API requests carry a token, not the session: they are not sent anywhere (README says so).
    if request.blueprint == "api" or request.endpoint in ENROLMENT_ENDPOINTS or not get_settings().REQUIRE_ADMIN_2FA:
        return None
    if current_user.is_authenticated and current_user.is_admin and not current_user.two_factor:
        flash("Admins need two-factor authentication here: set it up to continue.")
        return redirect(url_for("auth.two_factor_setup"))
    return None


@bp.route("/login/2fa", methods=["GET", "POST"])
def login_two_factor():
    form = CodeForm()
    with get_db().session() as s:
        user = pending_login.pending_user(s)
        if user is None:
            pending_login.clear()
            flash("Log in again: the sign-in waited too long or the account changed.")
            return redirect(url_for("auth.login"))
        if not form.validate_on_submit():
            return render_template("auth/login_2fa.html", form=form), 400 if form.errors else 200
        limiter, client = _limiter(), request.remote_addr or ""
        wait = limiter.second_factor_wait(client, user.email)
        if wait is not None:
            return too_many(wait, "auth/login_2fa.html", form=form)
        accepted = two_factor.check_second_factor(s, user, get_settings().SECRET_KEY, form.code.data)
        if accepted is None:
            audit.record_user_event(s, audit.LOGIN_2FA_FAILED, user, actor=audit.ANONYMOUS, ip=client,
                                    summary=f"wrong second factor for {user.email}")
            limiter.record_second_factor_failure(client, user.email)
            form.code.errors.append("Wrong code, or one already used.")
            return render_template("auth/login_2fa.html", form=form), 400
        limiter.succeeded(client, user.email)
        audit.record_user_event(s, audit.LOGIN, user, ip=client, summary=f"{user.email} signed in with "
                                + ("a recovery code" if accepted.recovery_code_used else "a code"))
        target = pending_login.next_path()
        _start_session(user)
        if accepted.recovery_code_used:
            flash(f"Recovery code used: {accepted.recovery_codes_left} left. Make new ones on the Account page.")
        return redirect(_safe_next(target))


@bp.route("/account/2fa", methods=["GET", "POST"])
@login_required
def two_factor_setup():
    form = SetupCodeForm()
    key = get_settings().SECRET_KEY
    with get_db().session() as s:
        user = s.get(User, current_user.id)
        if two_factor.is_enabled(user):
            return redirect(url_for("auth.account"))
        if form.validate_on_submit():
            try:
                codes = two_factor.enable(s, user, key, form.code.data, ip=request.remote_addr or "")
                _start_session(user)  # enabling ended every session, this one too
                return render_template("auth/recovery_codes.html", codes=codes, first=True)
            except ServiceError as exc:
                apply_error(form, exc)
        enrolment = two_factor.begin_enrolment(s, user, key)
        return render_template("auth/two_factor_setup.html", form=form, enrolment=enrolment), 400 if form.errors else 200


@bp.post("/account/2fa/recovery-codes")
@login_required
def two_factor_recovery_codes():
    form = CodeForm(prefix="tfr")
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                codes = _counted(lambda: two_factor.regenerate_recovery_codes(
                    s, s.get(User, current_user.id), get_settings().SECRET_KEY, form.code.data,
                    ip=request.remote_addr or ""))
            return render_template("auth/recovery_codes.html", codes=codes, first=False)
        except ServiceError as exc:
            apply_error(form, exc)
    g.two_factor_forms = {"regenerate": form}
    return _account_page_with_errors()


@bp.post("/account/2fa/disable")
@login_required
def two_factor_disable():
    form = DisableTwoFactorForm(prefix="tfd")
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                user = s.get(User, current_user.id)
                _counted(lambda: two_factor.disable(s, user, get_settings().SECRET_KEY, form.password.data,
                                                    form.code.data, ip=request.remote_addr or ""))
                _start_session(user)
            flash("Two-factor authentication is off.")
            return redirect(url_for("auth.account"))
        except ServiceError as exc:
            apply_error(form, exc)
    g.two_factor_forms = {"disable": form}
    return _account_page_with_errors()


def _counted(action):
    """Runs `action`; a refusal counts as a failed login, as on the login page: someone holding a stolen session
    must not guess codes here without limit."""
    limiter, client, email = _limiter(), request.remote_addr or "", current_user.email
    wait = limiter.second_factor_wait(client, email)
    if wait is not None:
        raise ServiceError(INVALID, wait.message)
    try:
        return action()
    except ServiceError:
        limiter.record_second_factor_failure(client, email)
        raise


def _account_page_with_errors():
    return _account_page(PasswordForm(prefix="pw", formdata=None), TokenForm(prefix="token", formdata=None),
                         status=400)


@dataclass(frozen=True)
class TwoFactorSection:
    """What auth/_two_factor.html shows on the account page."""

    enabled: bool
    since: datetime | None
    recovery_codes_left: int
    required: bool
    regenerate: CodeForm
    disable: DisableTwoFactorForm


def _section() -> TwoFactorSection:
    forms = g.get("two_factor_forms", {})
    with get_db().session() as s:
        user = s.get(User, current_user.id)
        return TwoFactorSection(
            enabled=two_factor.is_enabled(user), since=user.totp_enabled_at,
            recovery_codes_left=two_factor.recovery_codes_left(s, user),
            required=user.is_admin and get_settings().REQUIRE_ADMIN_2FA,
            regenerate=forms.get("regenerate") or CodeForm(prefix="tfr", formdata=None),
            disable=forms.get("disable") or DisableTwoFactorForm(prefix="tfd", formdata=None))


@bp.context_processor
def two_factor_context() -> dict:
    return {"two_factor_section": _section}  # called by the include only: other pages cost nothing
