"""The Flask dashboard and JSON API: create_app(settings) built from small register_* steps."""

from __future__ import annotations

from flask import Flask, request

from mailferry.db import Database
from mailferry.settings import Settings, settings_or_exit


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or settings_or_exit()
    app = Flask(__name__)
    register_config(app, settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_cli(app)
    register_proxies(app, settings)
    return app


def register_config(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.SESSION_COOKIE_SECURE,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.SESSION_COOKIE_SECURE,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["mailferry.settings"] = settings


def register_extensions(app: Flask, settings: Settings) -> None:
    from .auth.session_user import load_session_user
    from .extensions import csrf, get_db, login_manager

    db = Database(settings.DATABASE_URL)
    app.extensions["mailferry.db"] = db
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_id: str):
        with get_db().session() as s:
            return load_session_user(s, session_id, request.remote_addr or "")


def register_blueprints(app: Flask) -> None:
    from .admin import bp as admin_bp
    from .aliases import bp as aliases_bp
    from .api import bp as api_bp
    from .audit import bp as audit_bp
    from .auth import bp as auth_bp
    from .destinations import bp as destinations_bp
    from .domains import bp as domains_bp
    from .extensions import csrf
    from .health import bp as health_bp
    from .messages import bp as messages_bp
    from .metrics import bp as metrics_bp
    from .quarantine import bp as quarantine_bp
    from .stats import bp as stats_bp
    from .web import register_error_pages, route_label, security_headers, utc_time

    for blueprint in (health_bp, auth_bp, domains_bp, aliases_bp, destinations_bp, messages_bp, quarantine_bp, stats_bp,
                      admin_bp, audit_bp, metrics_bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api_bp)  # token-authenticated, no cookies: CSRF does not apply
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    register_error_pages(app)
    app.after_request(security_headers)
    app.add_template_filter(route_label)
    app.add_template_filter(utc_time)


def register_proxies(app: Flask, settings: Settings) -> None:
    from .proxies import TrustedProxies

    app.wsgi_app = TrustedProxies(app.wsgi_app, settings.TRUSTED_PROXIES)


def register_cli(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
