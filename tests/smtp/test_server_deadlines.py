"""Slowloris: clients trickling bytes are dropped at the command or DATA deadline; a client that keeps
streaming a big message is not. Short deadlines from settings."""

from __future__ import annotations

import socket
import time

from smtp import replies
from tests.smtp.conftest import RawClient
from tests.smtp.test_server_session import HEADERS, message_count, session

COMMAND_TIMEOUT = replies.COMMAND_TIMEOUT.format(host="mx.mailferry.test")
DATA_TIMEOUT = replies.DATA_TIMEOUT.format(host="mx.mailferry.test")
IDLE_TIMEOUT = replies.IDLE_TIMEOUT.format(host="mx.mailferry.test")


def trickle(clients: list[RawClient], payload: bytes, interval: float, for_at_most: float) -> float:
    """Send `payload` one byte per `interval` on every client until the server closes them all; the seconds
    that took."""
    started = time.monotonic()
    open_clients = list(clients)
    for position in range(len(payload)):
        for client in list(open_clients):
            try:
                client.send(payload[position:position + 1])
            except OSError:  # closed by the server
                open_clients.remove(client)
        if not open_clients or time.monotonic() - started > for_at_most:
            break
        time.sleep(interval)
    return time.monotonic() - started


def test_a_command_trickled_byte_by_byte_is_dropped_at_the_command_deadline(world, start_server):
    address = start_server(SMTP_COMMAND_TIMEOUT=1, SMTP_IDLE_TIMEOUT=60)
    clients = [RawClient(address) for _ in range(10)]  # the red team held 49 at once
    try:
        took = trickle(clients, b"EHLO a-rather-slow.example.org\r\n", interval=0.2, for_at_most=5)
        assert took < 3
        for client in clients:
            assert client.reply() == COMMAND_TIMEOUT
            assert client.closed()
    finally:
        for client in clients:
            client.close()
    fresh = RawClient(address)  # and the server serves the next client
    try:
        assert fresh.cmd("EHLO c.example.org").startswith("250")
    finally:
        fresh.close()


def test_a_pipelined_partial_line_after_complete_ones_has_the_deadline_too(world, start_server, raw_client):
    client = raw_client(start_server(SMTP_COMMAND_TIMEOUT=1, SMTP_IDLE_TIMEOUT=60))
    client.send(b"EHLO c.example.org\r\nNOOP\r\nMAIL FR")
    assert client.reply().startswith("250-mx.mailferry.test")
    assert client.reply() == "250 2.0.0 OK"
    trickle([client], b"OM:<s@example.org>\r\n", interval=0.3, for_at_most=4)
    assert client.reply() == COMMAND_TIMEOUT
    assert client.closed()


def test_empty_lines_do_not_keep_a_session_past_the_idle_timeout(world, start_server, raw_client):
    client = raw_client(start_server(SMTP_IDLE_TIMEOUT=1, SMTP_COMMAND_TIMEOUT=60))
    started = time.monotonic()
    answers = []
    while time.monotonic() - started < 4:
        try:
            client.send(b"\r\n")
        except OSError:
            break
        answers.append(client.reply())
        if answers[-1].startswith("421"):
            break
        time.sleep(0.25)
    assert answers[-1] == IDLE_TIMEOUT
    assert set(answers[:-1]) == {"500 5.5.2 Error: bad syntax"}
    assert time.monotonic() - started < 2.5
    assert client.closed()


def test_data_trickled_in_complete_lines_is_dropped_at_the_data_deadline(world, start_server, raw_client, db):
    client = raw_client(start_server(SMTP_DATA_TIMEOUT=1, SMTP_COMMAND_TIMEOUT=60, SMTP_IDLE_TIMEOUT=60))
    session(client)
    assert client.cmd("DATA").startswith("354")
    client.send(HEADERS)
    started = time.monotonic()
    for _ in range(20):  # one short line every 0.25 s: each restarts the idle timer, none completes the section
        try:
            client.send(b"x\r\n")
        except OSError:
            break
        time.sleep(0.25)
        if time.monotonic() - started > 4:
            break
    assert client.reply() == DATA_TIMEOUT
    assert client.closed()
    assert time.monotonic() - started < 3
    assert message_count(db) == 0


def test_a_big_message_that_keeps_streaming_outlives_the_data_floor(world, start_server, raw_client, db):
    # Streaming 1 MiB over ~2.5 s (400 KiB/s) with a 1 s floor and a 1 s idle timeout: the size allowance
    # (1 s per 10 KiB) keeps extending the deadline and every chunk restarts the idle timer.
    client = raw_client(start_server(SMTP_DATA_TIMEOUT=1, SMTP_IDLE_TIMEOUT=1))
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session(client)
    assert client.cmd("DATA").startswith("354")
    client.send(HEADERS)
    line = b"y" * 98 + b"\r\n"
    for _ in range(25):
        client.send(line * 420)  # 42 KB
        time.sleep(0.1)
    client.send(b".\r\n")
    assert client.reply().startswith("250 2.0.0 Ok: queued as ")
    assert message_count(db) == 1
