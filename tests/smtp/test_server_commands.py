"""Hostile command lines: control characters, 8-bit bytes, over-long lines, commands pipelined after STARTTLS."""

from __future__ import annotations

import ssl

import pytest
from sqlalchemy import select

from mailferry.models import Message
from smtp import replies
from smtp.certs import ensure_self_signed
from tests.smtp.conftest import RawClient
from tests.smtp.test_server_session import HEADERS, data, message_count, session


@pytest.mark.parametrize("ehlo, line", [
    (True, b"MAIL FROM:<nul\x00sender@example.org>"),
    (True, b"MAIL FROM:<sender@example.org>\x00"),
    (True, b"MAIL FROM:<sender@exa\rmple.org>"),
    (True, b"MAIL FROM:<sender@example.org> SIZE=10\x1b"),
    (False, b"EHLO client\x00.example.org"),
    (False, b"HELO client\x7f.example.org"),
    (False, b"VRFY john\x00@alias.test"),
    (False, b"NOOP \x07"),
])
def test_control_characters_in_a_command_are_refused(raw_client, ehlo, line):
    client = raw_client()
    if ehlo:
        client.cmd("EHLO c.example.org")
    assert client.cmd(line) == replies.CONTROL_CHARACTER
    assert client.cmd("NOOP") == "250 2.0.0 OK"


def test_control_characters_in_rcpt_are_refused_and_never_stored(raw_client, db):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    assert client.cmd(b"MAIL FROM:<nul\x00sender@example.org>") == replies.CONTROL_CHARACTER
    assert client.cmd("MAIL FROM:<sender@example.org>") == replies.OK_SENDER
    assert client.cmd(b"RCPT TO:<john\x00@alias.test>") == replies.CONTROL_CHARACTER
    assert client.cmd(b"RCPT TO:<john@alias.test>\x00") == replies.CONTROL_CHARACTER
    assert client.cmd("RCPT TO:<john@alias.test>") == replies.OK_RECIPIENT
    assert data(client, HEADERS + b"body").startswith("250 ")
    with db.session() as s:
        message = s.scalars(select(Message)).one()
        assert (message.mail_from, message.rcpt_tos) == ("sender@example.org", ["john@alias.test"])


def test_a_tab_between_parameters_is_not_a_control_character(raw_client):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    assert client.cmd("MAIL FROM:<s@example.org>\tSIZE=100") == replies.OK_SENDER


@pytest.mark.parametrize("line", [
    "MAIL FROM:<caf\u00e9@example.org>".encode(),
    b"MAIL FROM:<s@ex\xffample.org>",
    b"RCPT TO:<j\xc3\xb6hn@alias.test>",
])
def test_8bit_bytes_in_a_command_are_refused(raw_client, db, line):
    client = raw_client()
    session(client, rcpts=())
    assert client.cmd(line).startswith("500 5.5.2")
    assert client.cmd("NOOP") == "250 2.0.0 OK"


@pytest.mark.parametrize("line", [
    "RCPT TO:<" + "j" * 500 + "@alias.test>",   # 522 octets: over the 512 of RFC 5321 4.5.3.1.4
    "NOOP " + "n" * 1200,                       # over the 1001-octet reader limit
    "VRFY " + "v" * 100_000,
])
def test_over_long_command_lines_are_refused_and_the_session_goes_on(raw_client, db, line):
    client = raw_client()
    session(client, rcpts=())
    assert client.cmd(line) == replies.LINE_TOO_LONG
    assert client.cmd("RCPT TO:<john@alias.test>") == replies.OK_RECIPIENT
    assert data(client, HEADERS + b"body").startswith("250 ")
    assert message_count(db) == 1


@pytest.fixture
def tls_server(world, start_server, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    return start_server(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key), context


def test_commands_pipelined_after_starttls_are_discarded(tls_server, db):
    address, context = tls_server
    client = RawClient(address)
    try:
        client.cmd("EHLO c.example.org")
        # One packet: the injected commands would run inside the TLS session, in the attacker's name.
        client.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<john@alias.test>\r\nDATA\r\n")
        assert client.reply().startswith("220")
        client.sock = context.wrap_socket(client.sock)
        assert client.cmd("EHLO c.example.org").startswith("250-mx.mailferry.test")  # the first reply after TLS
        assert client.cmd("RCPT TO:<john@alias.test>").startswith("503 5.5.1")  # no MAIL was run
        assert client.cmd("MAIL FROM:<s@example.org>") == replies.OK_SENDER
        assert client.cmd("DATA").startswith("503 5.5.1")  # nor a RCPT
        assert client.cmd("QUIT") == "221 2.0.0 Bye"
    finally:
        client.close()
    assert message_count(db) == 0
