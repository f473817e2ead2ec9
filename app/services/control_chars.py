"""Control characters are refused in what users type into fields that end up in mail.

Domain names, addresses and notes reach headers and SMTP commands: a CR or LF (alone too, which some
servers and parsers treat as a line end) would start a header or a command of the user's choosing, and NUL
or other controls have no meaning there (PostgreSQL cannot even store a NUL).
"""

from __future__ import annotations

import re

from .errors import INVALID, ServiceError

# C0 controls (TAB, LF, CR, NUL...), DEL, C1 controls (NEL U+0085 is a line end to some parsers) and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\t": "a tab", "\x00": "a NUL byte"}


def refuse_control_characters(value: str, field: str, label: str) -> str:
    """`value` unchanged, or ServiceError(invalid) naming `field` when it holds a control character."""
    found = _CONTROL.search(value)
    if found:
        char = found.group()
        name = _NAMES.get(char, f"the control character U+{ord(char):04X}")
        raise ServiceError(INVALID, f"{label} must not contain line breaks or other control characters "
                                    f"(found {name})", field)
    return value
