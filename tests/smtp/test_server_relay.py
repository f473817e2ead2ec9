"""The relay battery: every way of asking us to pass mail on to somewhere we do not host is refused at RCPT,
and none of them leaves a message behind. Real SMTP sessions against the live server."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from harness.net import wait_for
from mailferry.models import Delivery, Message
from mailferry.queue import get_queue
from smtp import replies
from tests.smtp.test_server_session import HEADERS, data, message_count, session

LONG_LABEL = "a" * 64
LONG_DOMAIN = ".".join(["b" * 63] * 4) + ".alias.test"  # 263 octets, every label legal

BATTERY = [
    ("someone@gmail.com", replies.RELAY_DENIED),                         # a foreign domain
    ("john@alias.test.evil.test", replies.RELAY_DENIED),
    ("postmaster@mx.mailferry.test", replies.RELAY_DENIED),              # our host name is no hosted domain
    ("john@localhost", replies.RELAY_DENIED),
    ("user%gmail.com@alias.test", replies.RELAY_DENIED),                 # the percent hack
    ("user%gmail.com@catchall.test", replies.RELAY_DENIED),              # ... even where a catch-all takes all
    ("gmail.com!user@alias.test", replies.RELAY_DENIED),                 # a UUCP bang path
    ("gmail.com!user@catchall.test", replies.RELAY_DENIED),
    ('"user@gmail.com"@alias.test', replies.RELAY_DENIED),               # a quoted local part carrying an @
    ('"user@gmail.com"@catchall.test', replies.RELAY_DENIED),
    ('"user%gmail.com"@catchall.test', replies.RELAY_DENIED),
    ("@gmail.com:john@alias.test", replies.SOURCE_ROUTE),                # source routes
    ("@alias.test,@gmail.com:user@catchall.test", replies.SOURCE_ROUTE),
    ("john@[127.0.0.1]", replies.RELAY_DENIED),                          # IP literals
    ("john@[IPv6:::1]", replies.RELAY_DENIED),
    ("ghost@unverified.test", replies.RELAY_DENIED),                     # added but not verified
    ("off@alias.test", replies.UNKNOWN_RECIPIENT),                       # a disabled alias
    ("off+tag@alias.test", replies.UNKNOWN_RECIPIENT),
    ("john@alias.test.", replies.MALFORMED_ADDRESS),                  # trailing dots
    ("john@catchall.test..", replies.MALFORMED_ADDRESS),
    ("john@alias..test", replies.MALFORMED_ADDRESS),
    ("x" * 65 + "@catchall.test", replies.LOCAL_PART_TOO_LONG),          # over-long local part
    (f"john@{LONG_LABEL}.catchall.test", replies.MALFORMED_ADDRESS),  # a label over 63 octets
    (f"john@{LONG_DOMAIN}", replies.MALFORMED_ADDRESS),               # a domain over 255 octets
]


def queued_jobs(redis_conn, settings) -> int:
    return get_queue(redis_conn, settings.RQ_QUEUE).count


@pytest.mark.parametrize("rcpt, reply", BATTERY, ids=[rcpt[:40] for rcpt, _ in BATTERY])
def test_relay_attempt_is_refused_at_rcpt_and_nothing_is_queued(raw_client, db, redis_conn, settings, rcpt, reply):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    client.cmd("MAIL FROM:<s@example.org>")
    assert client.cmd(f"RCPT TO:<{rcpt}>") == reply
    assert client.cmd("DATA").startswith("503 5.5.1")  # no recipient was taken
    assert message_count(db) == 0
    assert queued_jobs(redis_conn, settings) == 0


def test_the_whole_battery_beside_a_real_recipient_delivers_to_that_one_only(raw_client, db, redis_conn, settings):
    client = raw_client()
    session(client)
    for rcpt, reply in BATTERY[:19]:  # under the per-session refusal limit
        assert client.cmd(f"RCPT TO:<{rcpt}>") == reply, rcpt
    assert data(client, HEADERS + b"body").startswith("250 2.0.0 Ok: queued as ")
    with db.session() as s:
        assert s.scalars(select(Message.rcpt_tos)).one() == ["john@alias.test"]
        assert s.scalars(select(Delivery.destination)).all() == ["john@dest.test"]
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1
    wait_for(lambda: queued_jobs(redis_conn, settings) == 1, what="the one job")  # enqueued after the commit
