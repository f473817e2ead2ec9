"""flask --app wsgi <command>: create-admin, domains, dkim, aliases, destinations, queue, quarantine, server, stats."""

from flask import Flask


def register_commands(app: Flask) -> None:
    from .admin import create_admin
    from .aliases import aliases
    from .destinations import destinations
    from .dkim_keys import dkim
    from .domains import domains
    from .quarantine import quarantine
    from .queue_status import queue
    from .server import server
    from .stats import stats

    for command in (create_admin, domains, dkim, aliases, destinations, queue, quarantine, server, stats):
        app.cli.add_command(command)
