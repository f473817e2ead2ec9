"""When a deferred destination is tried next, and when it gives up."""

from __future__ import annotations

from datetime import datetime, timedelta


def next_attempt(attempts: int, now: datetime, received_at: datetime, schedule: tuple[int, ...],
                 lifetime: int) -> datetime | None:
    """The time of the next try after `attempts` failed ones, or None when the queue lifetime is over.

    The waits follow `schedule` with its last entry repeating; the final try happens at the lifetime's
    end so a destination that comes back late still gets the message.
    """
    expires = received_at + timedelta(seconds=lifetime)
    if now >= expires:
        return None
    wait = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return min(now + timedelta(seconds=wait), expires)
