"""Control characters are refused in what users type into fields that end up in mail: domain names,
addresses and notes reach headers and SMTP commands (see mailferry/control_chars.py), and PostgreSQL cannot
even store a NUL."""

from __future__ import annotations

from mailferry.control_chars import PROBLEM, first_control_character

from .errors import INVALID, ServiceError


def refuse_control_characters(value: str, field: str, label: str) -> str:
    """`value` unchanged, or ServiceError(invalid) naming `field` when it holds a control character."""
    found = first_control_character(value)
    if found:
        raise ServiceError(INVALID, f"{label} {PROBLEM} (found {found})", field)
    return value
