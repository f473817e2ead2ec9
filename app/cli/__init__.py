"""flask --app wsgi <command>: admin, domains, dkim, aliases, queue."""

from flask import Flask


def register_commands(app: Flask) -> None:
    pass
