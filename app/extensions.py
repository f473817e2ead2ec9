"""Accessors for what create_app attached to the running app, and the Flask extensions it initialises."""

from __future__ import annotations

from flask import current_app
from flask_login import LoginManager, current_user
from flask_wtf import CSRFProtect
from redis import Redis

from mailferry.db import Database
from mailferry.queue import get_queue, make_redis
from mailferry.settings import Settings

login_manager = LoginManager()
csrf = CSRFProtect()


def get_settings() -> Settings:
    return current_app.extensions["mailferry.settings"]


def get_db() -> Database:
    return current_app.extensions["mailferry.db"]


def get_redis() -> Redis:
    """One client per app, built on first use (redis-py connects lazily, so nothing happens at start)."""
    redis = current_app.extensions.get("mailferry.redis")
    if redis is None:
        redis = current_app.extensions["mailferry.redis"] = make_redis(get_settings().REDIS_URL)
    return redis


def get_rq_queue():
    return get_queue(get_redis(), get_settings().RQ_QUEUE)


def actor():
    """The signed-in user as the service layer's Actor (id, is_admin)."""
    return current_user._get_current_object()
