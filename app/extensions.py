"""Accessors for what create_app attached to the running app."""

from __future__ import annotations

from flask import current_app

from mailferry.db import Database
from mailferry.settings import Settings


def get_settings() -> Settings:
    return current_app.extensions["mailferry.settings"]


def get_db() -> Database:
    return current_app.extensions["mailferry.db"]
