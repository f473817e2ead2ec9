"""flask --app wsgi <command>: create-admin, reset-2fa, domains, dkim, aliases, destinations, queue, quarantine, server,
stats, audit."""

from flask import Flask


def register_commands(app: Flask) -> None:
    from .admin import create_admin, reset_two_factor
    from .aliases import aliases
    from .audit import audit
    from .destinations import destinations
    from .dkim_keys import dkim
    from .domains import domains
    from .quarantine import quarantine
    from .queue_status import queue
    from .server import server
    from .stats import stats

    for command in (create_admin, reset_two_factor, domains, dkim, aliases, destinations, queue, quarantine, server,
                    stats, audit):
        app.cli.add_command(command)
