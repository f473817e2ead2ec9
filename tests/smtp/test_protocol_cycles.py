"""A finished SMTP session is freed by reference counting: nothing of it waits for the cyclic GC, whose full
passes over a busy server's garbage stalled every session of the process (issue 6)."""

from __future__ import annotations

import asyncio
import gc
import smtplib
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.smtp.test_server_accept import BODY


def _send(server, count: int) -> None:
    for _ in range(count):
        with smtplib.SMTP(*server, timeout=30) as client:
            client.ehlo("c.example.org")
            client.mail("s@example.org")
            client.rcpt("john@alias.test")
            assert client.data(BODY)[0] == 250


def _garbage_of(server, sessions: int) -> list:
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage instead of freed
    try:
        _send(server, sessions)
        time.sleep(0.5)  # the server sees the last connection close
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_finished_session_leaves_nothing_to_the_cyclic_gc(server):
    _send(server, 3)  # caches and pools warmed up

    garbage = _garbage_of(server, 20)

    ours = [o for o in garbage if isinstance(o, (SMTP, Session, Envelope, asyncio.Task, BaseException))]
    assert ours == []
    assert len(garbage) <= 10 * 20  # asyncio's own transport keeps a bound method of itself: a few objects each
