"""Outcomes committed through a database outage: what a destination took while the database was away is
recorded when it comes back, instead of being sent again by whoever takes the message after our lease.

The commits retried here are safe to run again after an ambiguous failure (a COMMIT whose answer was lost):
each one is guarded by our lease and by every delivery's state, so a second run finds the work done and
writes nothing. They are retried only while our lease lasts: until then nobody else may take the message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from mailferry.logs import get_logger, log

from .lease import Holder

logger = get_logger("smtp.delivery.recommit")
RETRY_EVERY = 1.0  # seconds between tries while the database is away
T = TypeVar("T")


def _unavailable(exc: Exception) -> bool:
    """The database could not be reached or could not write (down, restarting, locked, disk full)."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def until_committed(commit: Callable[[], T], held: Holder, what: str, every: float = RETRY_EVERY) -> T:
    """commit() until it gets through; a failure other than an unavailable database, or one when our lease
    has run out, is raised (the message is then retried after the lease, as after a crash)."""
    deadline = time.monotonic() + held.expires_in()  # the lease as it stands: a failed commit renewed nothing
    while True:
        try:
            return commit()
        except Exception as exc:
            left = deadline - time.monotonic()
            if not _unavailable(exc) or left <= every:
                raise
            log(logger, logging.WARNING, "database unavailable, retrying the commit", message_id=held.message_id,
                what=what, error=type(exc).__name__, lease_left=round(left, 1))
            time.sleep(every)
