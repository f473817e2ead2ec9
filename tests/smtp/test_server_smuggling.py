"""SMTP smuggling and reply synchronisation: a second transaction hidden inside DATA behind a look-alike
end-of-data never becomes a message, and a pipelining client gets exactly one reply per command, in order,
however its packets are cut."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from mailferry.models import Delivery, Message
from smtp import replies
from tests.smtp.test_server_session import HEADERS, data, message_count, session

SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<team@alias.test>\r\nDATA\r\n"
            b"From: ceo@alias.test\r\nSubject: smuggled\r\n\r\nsecond message\r\n")
# smtpsmug's end-of-data look-alikes (https://github.com/hannob/smtpsmug), and NUL-padded dots.
VARIANTS = [
    (b"\n.\n", replies.BARE_LINE_ENDING),
    (b"\n.\r\n", replies.BARE_LINE_ENDING),
    (b"\r.\r\n", replies.BARE_LINE_ENDING),
    (b"\r\n.\r", replies.BARE_LINE_ENDING),
    (b"\r\n.\n", replies.BARE_LINE_ENDING),
    (b"\r.\n", replies.BARE_LINE_ENDING),
    (b"\n.\r", replies.BARE_LINE_ENDING),
    (b"\r\n\x00.\r\n", replies.NUL_IN_DATA),
    (b"\r\n.\x00\r\n", replies.NUL_IN_DATA),
    (b"\r\n\x00.\x00\r\n", replies.NUL_IN_DATA),
]


@pytest.mark.parametrize("look_alike, refusal", VARIANTS, ids=[repr(v) for v, _ in VARIANTS])
def test_a_transaction_smuggled_behind_a_look_alike_end_of_data_never_becomes_a_message(
        raw_client, db, look_alike, refusal):
    client = raw_client()
    session(client)
    assert data(client, HEADERS + b"first" + look_alike + SMUGGLED) == refusal
    # In step: the smuggled MAIL/RCPT/DATA were read as message data, not run as commands.
    assert client.cmd("NOOP") == "250 2.0.0 OK"
    assert message_count(db) == 0
    session(client)
    assert data(client, HEADERS + b"legit").startswith("250 2.0.0 Ok: queued as ")
    assert client.cmd("QUIT") == "221 2.0.0 Bye"
    with db.session() as s:
        assert s.scalars(select(Message.raw)).all() == [HEADERS + b"legit\r\n"]
        assert s.scalars(select(Delivery.destination)).all() == ["john@dest.test"]


def send_in_two(client, wire: bytes, cut: int) -> None:
    """Two packets: the server reads the first before the second arrives."""
    client.send(wire[:cut])
    time.sleep(0.01)
    client.send(wire[cut:])


def cuts_around(wire: bytes, marker: bytes, spread: int = 6) -> list[int]:
    at = wire.index(marker)
    return [cut for cut in range(at - spread, at + len(marker) + spread) if 0 < cut < len(wire)]


BODY_ENDING_IN_AN_EMPTY_LINE = HEADERS + b"body\r\n\r\n.\r\nNOOP\r\n"


@pytest.mark.parametrize("cut", cuts_around(BODY_ENDING_IN_AN_EMPTY_LINE, b"\r\n\r\n.\r\n"))
def test_every_command_gets_one_reply_however_the_end_of_data_is_cut(raw_client, db, cut):
    client = raw_client()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session(client)
    assert client.cmd("DATA").startswith("354")
    send_in_two(client, BODY_ENDING_IN_AN_EMPTY_LINE, cut)
    assert client.reply().startswith("250 2.0.0 Ok: queued as ")
    assert client.reply() == "250 2.0.0 OK"  # the NOOP's, and nothing before it
    assert client.cmd("QUIT") == "221 2.0.0 Bye"
    with db.session() as s:
        assert s.scalars(select(Message.raw)).all() == [HEADERS + b"body\r\n\r\n"]


DATA_AND_AN_EMPTY_MESSAGE = b"DATA\r\n\r\n.\r\nNOOP\r\n"


@pytest.mark.parametrize("cut", [None, *cuts_around(DATA_AND_AN_EMPTY_MESSAGE, b"\r\n.\r\n", spread=2)])
def test_data_followed_at_once_by_the_terminator_and_a_command(raw_client, db, cut):
    client = raw_client()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session(client)
    if cut is None:  # all in one packet
        client.send(DATA_AND_AN_EMPTY_MESSAGE)
    else:
        send_in_two(client, DATA_AND_AN_EMPTY_MESSAGE, cut)
    assert client.reply().startswith("354")
    assert client.reply().startswith("250 2.0.0 Ok: queued as ")
    assert client.reply() == "250 2.0.0 OK"
    assert client.cmd("QUIT") == "221 2.0.0 Bye"
    assert message_count(db) == 1
