"""Finding control characters in text that will end up in mail headers or SMTP commands.

A CR or LF (alone too: some servers and parsers take either as a line end) would start a header or a command
of its own; NUL and the other controls have no meaning in names, addresses or notes.
"""

from __future__ import annotations

import re

# C0 controls (TAB, LF, CR, NUL...), DEL, C1 controls (NEL U+0085 ends a line for some parsers) and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMES = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\t": "a tab", "\x00": "a NUL byte"}
PROBLEM = "must not contain line breaks or other control characters"


def first_control_character(value: str) -> str | None:
    """The first control character in `value`, named for a person ("a line feed (LF)"), or None."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    char = found.group()
    return _NAMES.get(char, f"the control character U+{ord(char):04X}")


def one_line(value: str, limit: int = 200) -> str:
    """`value` as one line of text for a notice: control characters become spaces, runs of spaces one, at most
    `limit` characters (then an ellipsis)."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
