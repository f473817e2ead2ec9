"""What every command shares: the --json flag, one-line errors and exit codes.

Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad usage (click);
3 `domains verify` ran but the required records do not pass.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from app.services.errors import UNAVAILABLE, ServiceError

EXIT_ERROR = 1
EXIT_NOT_VERIFIED = 3


def invocation(argv0: str | None = None, cwd: str | None = None) -> str:
    """How to run the CLI again, for the hints commands print: as the user ran it (`.venv/bin/flask` in a
    checkout, `flask` where it is on PATH, e.g. in the container), plain `flask` when started otherwise."""
    program = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(program) != "flask":
        return "flask --app wsgi"
    if os.path.isabs(program):
        on_path = shutil.which("flask")
        if on_path and os.path.realpath(on_path) == os.path.realpath(program):
            return "flask --app wsgi"
        relative = os.path.relpath(program, cwd or os.getcwd())
        if not relative.startswith(".."):
            program = relative
    return f"{program} --app wsgi"


def emit(as_json: bool, data: Any, lines: list[str] | str = "") -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(lines if isinstance(lines, str) else "\n".join(lines))


def fail(as_json: bool, error: ServiceError, code: int = EXIT_ERROR) -> None:
    if as_json:
        click.echo(json.dumps({"error": error.to_dict()}))
    else:
        click.echo(f"Error: {error.message}", err=True)
    raise click.exceptions.Exit(code)


def database_error_line(exc: SQLAlchemyError) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
        reason += " (the schema is missing: run `alembic upgrade head`)"
    return f"database error: {reason}"


def cli_command(func: Callable) -> Callable:
    """Adds --json and turns ServiceError / database failures into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, as_json: bool = False, **kwargs):
        try:
            return func(*args, as_json=as_json, **kwargs)
        except ServiceError as exc:
            fail(as_json, exc)
        except SQLAlchemyError as exc:
            fail(as_json, ServiceError(UNAVAILABLE, database_error_line(exc)))

    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(wrapper)
