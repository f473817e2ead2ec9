"""The Flask dashboard and JSON API: create_app(settings) built from small register_* steps."""

from __future__ import annotations

from flask import Flask

from mailferry.db import Database
from mailferry.settings import Settings, settings_or_exit


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or settings_or_exit()
    app = Flask(__name__)
    register_config(app, settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_cli(app)
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
    db = Database(settings.DATABASE_URL)
    app.extensions["mailferry.db"] = db


def register_blueprints(app: Flask) -> None:
    from .health import bp as health_bp

    app.register_blueprint(health_bp)


def register_cli(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
