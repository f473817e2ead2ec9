from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.extensions import actor, get_db, get_redis, get_settings
from app.services import audit, mailboxes, notification_prefs, tokens, two_factor, users
from app.services.errors import ServiceError
from app.services.login_limit import LoginLimiter, Wait
from app.web import apply_error
from mailferry.models import User
from mailferry.models.notification import NOTIFICATION_KINDS

from . import bp, pending_login
from .forms import LoginForm, PasswordForm, SignupForm, TokenForm
from .redirects import local_path
from .session_user import SessionUser

NEW_TOKEN = "new_token_secret"  # the session slot of a token secret between its POST and the page showing it


def too_many(wait: Wait, template: str, **context):
    """The page again with how long to wait, as a 429 with Retry-After."""
    context["form"].form_errors.append(wait.message)
    response = make_response(render_template(template, **context), 429)
    response.headers["Retry-After"] = str(wait.seconds)
    return response


def _limiter() -> LoginLimiter:
    settings = get_settings()
    return LoginLimiter(get_redis(), settings.LOGIN_RATE_LIMIT, settings.LOGIN_RATE_WINDOW)


def _safe_next(target: str | None) -> str:
    return local_path(target) or url_for("domains.index")


def _start_session(user) -> None:
    session.clear()  # a fresh session on login: no fixation
    login_user(SessionUser(user, _ip()))


def _ip() -> str:
    return request.remote_addr or ""


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        limiter, client, email = _limiter(), request.remote_addr or "", form.email.data
        wait = limiter.wait(client, email)
        if wait is not None:
            return too_many(wait, "auth/login.html", form=form, signup=get_settings().SIGNUP_ENABLED)
        with get_db().session() as s:
            user = users.authenticate(s, email, form.password.data)
            if user is not None and two_factor.is_enabled(user):
                # the failure count is reset only after the code: a known password must not reset it per guess
                pending_login.begin(user, request.args.get("next"))
                return redirect(url_for("auth.login_two_factor"))
            if user is not None:
                limiter.succeeded(client, email)
                audit.record_user_event(s, audit.LOGIN, user, ip=client, summary=f"{user.email} signed in")
                _start_session(user)
                return redirect(_safe_next(request.args.get("next")))
            audit.record_login_failed(s, email, users.find_user(s, email), client)
        limiter.record_failure(client, email)
        form.form_errors.append("Wrong email or password.")
    return render_template("auth/login.html", form=form, signup=get_settings().SIGNUP_ENABLED)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if not get_settings().SIGNUP_ENABLED:
        abort(404)
    form = SignupForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                user = users.create_user(s, form.email.data, form.password.data, actor=audit.SIGNUP, ip=_ip())
                mailboxes.start_signup(s, user, get_settings())
                _start_session(user)
            flash(f"Welcome! Add your first domain below. We sent a confirmation link to {user.email}: "
                  "mail is forwarded there once you open it." if get_settings().REQUIRE_VERIFIED_DESTINATIONS
                  else "Welcome! Add your first domain below.")
            return redirect(url_for("domains.index"))
        except ServiceError as exc:
            apply_error(form, exc)
    return render_template("auth/signup.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    # CSRFProtect has checked the token: a cross-site POST cannot log anyone out. A copy of the cookie
    # taken before must not sign in again, so the user's session version moves on (all devices sign out).
    with get_db().session() as s:
        users.end_sessions(s, s.get(User, current_user.id))
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form, token_form = PasswordForm(prefix="pw"), TokenForm(prefix="token")
    if "pw-old_password" in request.form:
        if form.validate_on_submit():
            try:
                with get_db().session() as s:
                    user = s.get(User, current_user.id)
                    users.change_password(s, user, form.old_password.data, form.new_password.data, ip=_ip())
                    _start_session(user)  # the old session id no longer matches the new hash
                flash("Password changed.")
                return redirect(url_for("auth.account"))
            except ServiceError as exc:
                apply_error(form, exc)
    return _account_page(form, token_form)


def _account_page(form, token_form, status: int = 200):
    new_secret = session.pop(NEW_TOKEN, None)
    with get_db().session() as s:
        rows = tokens.list_tokens(s, s.get(User, current_user.id))
        return render_template("auth/account.html", form=form, token_form=token_form, tokens=rows,
                               new_secret=new_secret), status


@bp.post("/account/tokens")
@login_required
def create_token():
    token_form = TokenForm(prefix="token")
    if token_form.validate_on_submit():
        try:
            with get_db().session() as s:
                _token, secret = tokens.create_token(
                    s, s.get(User, current_user.id), token_form.name.data, read_only=token_form.read_only.data,
                    expires_in_days=int(token_form.expires.data) if token_form.expires.data else None, actor=actor())
            session[NEW_TOKEN] = secret  # shown once by the page we redirect to: a reload repeats no POST
            return redirect(url_for("auth.account"))
        except ServiceError as exc:
            apply_error(token_form, exc)
    return _account_page(PasswordForm(prefix="pw", formdata=None), token_form, status=400)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    with get_db().session() as s:
        tokens.revoke_token(s, token_id, actor())
    flash("Token revoked.")
    return redirect(url_for("auth.account"))


@bp.app_template_global()
def notification_switches() -> list[notification_prefs.Switch]:
    """The signed-in owner's notice switches, for auth/_notifications.html (whichever view renders the page)."""
    with get_db().session() as s:
        return notification_prefs.switches(s, current_user.id, actor())


@bp.post("/account/notifications")
@login_required
def notifications():
    # A checkbox left unticked is not sent: every kind missing from the form is turned off.
    with get_db().session() as s:
        notification_prefs.set_preferences(s, current_user.id, actor(),
                                           {kind: kind in request.form for kind in NOTIFICATION_KINDS})
    flash("Notification settings saved.")
    return redirect(url_for("auth.account") + "#notifications")
