"""flask server records"""

from __future__ import annotations

from flask.cli import AppGroup

from app.extensions import get_settings
from app.services.server_records import server_records

from .output import cli_command, emit

server = AppGroup("server", help="This server's own DNS records.")


@server.command("records")
@cli_command
def records(as_json: bool) -> None:
    """The DNS records SMTP_HOSTNAME needs: A/AAAA, PTR (forward-confirmed reverse DNS) and SPF for HELO."""
    found = server_records(get_settings())
    lines = [f"DNS records for {get_settings().SMTP_HOSTNAME}:"]
    lines += [f"  {r.type:<6} {r.name}\n         {r.value}\n         ({r.note})" for r in found]
    emit(as_json, [r.to_dict() for r in found], lines)
