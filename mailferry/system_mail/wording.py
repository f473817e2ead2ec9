"""Small phrases of our notices."""

from __future__ import annotations

_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def duration_words(seconds: int) -> str:
    """A setting's duration as people say it: 432000 -> "5 days", 5400 -> "90 minutes", 14400 -> "4 hours"."""
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"
