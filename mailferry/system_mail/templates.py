"""The words of our notices: one Jinja template pair per kind under templates/ (<name>.txt and <name>.html, the
HTML one autoescaped), both given the same values."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


@cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
                       autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False))


def render(name: str, **values) -> tuple[str, str]:
    """(plain text, HTML) of templates/<name>.txt and templates/<name>.html; a missing value is an error."""
    env = _environment()
    return env.get_template(f"{name}.txt").render(**values), env.get_template(f"{name}.html").render(**values)
