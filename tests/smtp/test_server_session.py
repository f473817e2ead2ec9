"""The SMTP conversation: banner, EHLO, each RCPT refusal, limits, malformed input. Raw sockets."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from mailferry.models import Message
from smtp import replies

HEADERS = b"From: s@example.org\r\nSubject: t\r\nMessage-ID: <t@example.org>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n"


def session(client, rcpts=("john@alias.test",), helo="client.example.org", mail_from="<s@example.org>"):
    assert client.cmd(f"EHLO {helo}").startswith("250")
    assert client.cmd(f"MAIL FROM:{mail_from}").startswith("250")
    for rcpt in rcpts:
        assert client.cmd(f"RCPT TO:<{rcpt}>").startswith("250"), rcpt


def data(client, payload: bytes) -> str:
    assert client.cmd("DATA").startswith("354")
    client.send(payload + b"\r\n.\r\n")
    return client.reply()


def message_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_banner_names_our_host_and_no_version(raw_client):
    client = raw_client()
    assert client.greeting == "220 mx.mailferry.test ESMTP"


def test_ehlo_advertises_size_pipelining_and_no_auth_or_starttls_without_a_certificate(raw_client):
    lines = raw_client().cmd("EHLO client.example.org").split("\n")
    assert lines[0] == "250-mx.mailferry.test"
    keywords = [line[4:] for line in lines[1:]]
    assert "SIZE 26214400" in keywords
    assert "8BITMIME" in keywords and "PIPELINING" in keywords and "ENHANCEDSTATUSCODES" in keywords
    assert not any(k.startswith(("AUTH", "STARTTLS", "HELP")) for k in keywords)
    assert lines[-1].startswith("250 ") and all(line.startswith("250-") for line in lines[:-1])


@pytest.mark.parametrize("rcpt, reply", [
    ("john@alias.test", replies.OK_RECIPIENT),
    ("JOHN@Alias.Test", replies.OK_RECIPIENT),
    ("john+news@alias.test", replies.OK_RECIPIENT),        # sub-address of john
    ("john+vip@alias.test", replies.OK_RECIPIENT),         # an alias of its own
    ("anything@catchall.test", replies.OK_RECIPIENT),      # catch-all
    ("nobody@alias.test", replies.UNKNOWN_RECIPIENT),
    ("nobody+tag@alias.test", replies.UNKNOWN_RECIPIENT),
    ("off@alias.test", replies.UNKNOWN_RECIPIENT),         # disabled alias
    ("ghost@unverified.test", replies.RELAY_DENIED),       # unverified domain
    ("someone@gmail.com", replies.RELAY_DENIED),           # never an open relay
    ("john@alias.test.evil.test", replies.RELAY_DENIED),
    ("john@[127.0.0.1]", replies.RELAY_DENIED),
    ("x" * 65 + "@alias.test", replies.LOCAL_PART_TOO_LONG),
    ("SRS0=abcd=ZZ=example.org=bob@alias.test", replies.BAD_SRS_ADDRESS),  # forged hash
])
def test_rcpt_replies(raw_client, rcpt, reply):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    client.cmd("MAIL FROM:<s@example.org>")
    assert client.cmd(f"RCPT TO:<{rcpt}>") == reply


def test_refused_recipients_do_not_stop_the_accepted_ones(raw_client, db):
    client = raw_client()
    session(client)
    assert client.cmd("RCPT TO:<nobody@alias.test>") == replies.UNKNOWN_RECIPIENT
    assert client.cmd("RCPT TO:<x@gmail.com>") == replies.RELAY_DENIED
    assert data(client, HEADERS + b"body").startswith("250 2.0.0 Ok: queued as ")
    with db.session() as s:
        assert s.scalars(select(Message.rcpt_tos)).one() == ["john@alias.test"]


def test_more_than_the_recipient_limit_gets_452(world, start_server, raw_client):
    client = raw_client(start_server(SMTP_MAX_RECIPIENTS=3))
    session(client, rcpts=["john@alias.test", "team@alias.test", "a@catchall.test"])
    assert client.cmd("RCPT TO:<b@catchall.test>") == replies.TOO_MANY_RECIPIENTS
    assert data(client, HEADERS + b"body").startswith("250 ")


def test_default_limit_is_100_recipients(raw_client):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    client.cmd("MAIL FROM:<s@example.org>")
    # pipelined, as a bulk sender would
    client.send(b"".join(b"RCPT TO:<r%d@catchall.test>\r\n" % n for n in range(101)))
    answers = [client.reply() for _ in range(101)]
    assert answers[:100] == [replies.OK_RECIPIENT] * 100
    assert answers[100] == replies.TOO_MANY_RECIPIENTS


def test_message_over_the_size_limit_is_refused(world, start_server, raw_client, db):
    client = raw_client(start_server(SMTP_MAX_MESSAGE_SIZE=2048))
    assert "SIZE 2048" in client.cmd("EHLO c.example.org")
    assert client.cmd("MAIL FROM:<s@example.org> SIZE=4096") == replies.MESSAGE_TOO_BIG
    assert client.cmd("MAIL FROM:<s@example.org> SIZE=1000").startswith("250")
    client.cmd("RCPT TO:<john@alias.test>")
    assert data(client, HEADERS + b"x" * 80 + (b"\r\n" + b"y" * 80) * 40) == replies.MESSAGE_TOO_BIG
    # the session goes on
    session(client)
    assert data(client, HEADERS + b"small").startswith("250 ")
    assert message_count(db) == 1


def test_loop_more_than_30_received_headers_is_refused(raw_client, db):
    client = raw_client()
    session(client)
    received = b"".join(b"Received: from h%d by h%d; Mon, 23 Nov 2026 09:00:00 +0000\r\n" % (n, n) for n in range(31))
    assert data(client, received + HEADERS + b"body") == replies.MAIL_LOOP
    session(client)
    assert data(client, received[: -len(received) // 31] + HEADERS + b"body").startswith("250 ")
    assert message_count(db) == 1


def test_received_in_the_body_does_not_count(raw_client):
    client = raw_client()
    session(client)
    body = b"".join(b"Received: quoted %d\r\n" % n for n in range(40))
    assert data(client, HEADERS + body).startswith("250 ")


def test_bare_lf_smuggling_is_refused_and_no_second_message_appears(raw_client, db):
    client = raw_client()
    session(client)
    smuggled = (HEADERS + b"first\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<john@alias.test>\nDATA\n"
                b"Subject: smuggled\n\nsecond")
    assert data(client, smuggled) == replies.BARE_LINE_ENDING
    # the session is still in step: the next command gets its own reply
    assert client.cmd("NOOP") == "250 2.0.0 OK"
    assert message_count(db) == 0


@pytest.mark.parametrize("payload", [b"one\rtwo", b"one\ntwo", b"line\r\n.\r.\r\nrest", b"trailing\n"])
def test_bare_cr_or_lf_anywhere_in_data_is_refused(raw_client, db, payload):
    client = raw_client()
    session(client)
    assert data(client, HEADERS + payload) == replies.BARE_LINE_ENDING
    assert message_count(db) == 0


def test_oversize_line_in_data_and_in_a_command(raw_client, db):
    client = raw_client()
    session(client)
    assert data(client, HEADERS + b"z" * 5000) == replies.LINE_TOO_LONG
    assert client.cmd("NOOP " + "n" * 2000) == replies.LINE_TOO_LONG
    session(client)
    assert data(client, HEADERS + b"z" * 998).startswith("250 ")
    assert message_count(db) == 1


@pytest.mark.parametrize("ehlo, line, reply_start", [
    (False, "MAIL FROM:<s@example.org>", "503 5.5.1"),
    (False, "FOO bar", "500 5.5.2"),
    (False, "", "500 5.5.2"),
    (True, "RCPT TO:<john@alias.test>", "503 5.5.1"),
    (True, "DATA", "503 5.5.1"),
    (True, "MAIL FROM:", "501 5.5.4"),
    (True, "MAIL FROM:<not an address", "553 5.1.3"),
    (True, "MAIL FROM:<a@b c>", "501 5.5.4"),
    (True, "MAIL FROM:<nodomain>", "553 5.1.3"),
    (True, "MAIL FROM:<a@bad_domain!>", "553 5.1.3"),
    (True, "MAIL FROM:<@x>", "553 5.1.3"),
    (True, "MAIL TO:<s@example.org>", "501 5.5.4"),
    (True, "MAIL FROM:<s@example.org> BODY=9BIT", "501 5.5.4"),
    (True, "MAIL FROM:<s@example.org> FOO=1", "555 5.5.4"),
    (False, "EHLO", "501 "),
    (False, "HELO", "501 "),
    (False, "VRFY john@alias.test", "252 2.5.0"),
    (False, "EXPN list", "502 5.5.1"),
    (False, "STARTTLS", "454 4.7.0"),  # not offered without a certificate
])
def test_malformed_commands_get_the_right_code_and_the_session_goes_on(raw_client, ehlo, line, reply_start):
    client = raw_client()
    if ehlo:
        client.cmd("EHLO c.example.org")
    assert client.cmd(line).startswith(reply_start)
    assert client.cmd("NOOP").startswith("250")


def test_nested_mail_and_rset(raw_client):
    client = raw_client()
    session(client)
    assert client.cmd("MAIL FROM:<t@example.org>").startswith("503 5.5.1")
    assert client.cmd("RSET") == "250 2.0.0 OK"
    assert client.cmd("DATA").startswith("503 5.5.1")
    assert client.cmd("MAIL FROM:<t@example.org>").startswith("250")


def test_too_many_unknown_commands_close_the_session(raw_client):
    client = raw_client()
    answers = [client.cmd(f"BOGUS{n}") for n in range(5)]
    assert answers[-1].startswith("502 5.5.1")
    assert client.closed()


def test_quit(raw_client):
    client = raw_client()
    assert client.cmd("QUIT") == "221 2.0.0 Bye"
    assert client.closed()


def test_idle_session_is_closed_with_421(world, start_server, raw_client):
    client = raw_client(start_server(SMTP_IDLE_TIMEOUT=1))
    client.cmd("EHLO c.example.org")
    assert client.reply() == "421 4.4.2 mx.mailferry.test Idle timeout, closing connection"
    assert client.closed()


def test_pipelined_commands_after_the_data_terminator_are_answered_in_order(raw_client, db):
    client = raw_client()
    client.cmd("EHLO c.example.org")
    client.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<john@alias.test>\r\nDATA\r\n")
    assert [client.reply() for _ in range(3)][2].startswith("354")
    client.send(HEADERS + b"one\r\n.\r\nMAIL FROM:<t@example.org>\r\nRCPT TO:<team@alias.test>\r\nDATA\r\n")
    answers = [client.reply() for _ in range(4)]
    assert answers[0].startswith("250 2.0.0 Ok: queued as ")
    assert answers[1:] == [replies.OK_SENDER, replies.OK_RECIPIENT, "354 End data with <CR><LF>.<CR><LF>"]
    client.send(HEADERS + b"two\r\n.\r\nQUIT\r\n")
    assert client.reply().startswith("250 2.0.0 Ok: queued as ")
    assert client.reply() == "221 2.0.0 Bye"
    with db.session() as s:
        assert sorted(m.raw for m in s.scalars(select(Message))) == [HEADERS + b"one\r\n", HEADERS + b"two\r\n"]


def test_connection_dropped_during_data_spools_nothing(raw_client, db, server):
    client = raw_client()
    session(client)
    assert client.cmd("DATA").startswith("354")
    client.send(HEADERS + b"half a message")
    client.close()
    # the server is still serving, and nothing was spooled
    other = raw_client()
    session(other)
    assert data(other, HEADERS + b"whole").startswith("250 ")
    with db.session() as s:
        assert [m.raw for m in s.scalars(select(Message))] == [HEADERS + b"whole\r\n"]


def test_junk_commands_are_limited_per_session(raw_client):
    client = raw_client()
    answers = [client.cmd("NOOP") for _ in range(101)]
    assert answers[:100] == ["250 2.0.0 OK"] * 100
    assert answers[100] == "421 4.7.0 NOOP sent too many times"
    assert client.closed()


def test_our_own_loop_marker_refuses_that_alias_only(raw_client, db):
    marked = b"X-Mailferry-Loop: john@alias.test\r\n" + HEADERS + b"body"
    client = raw_client()
    session(client)
    assert data(client, marked) == replies.MAIL_LOOP
    session(client, rcpts=["John@alias.test", "team@alias.test"])
    assert data(client, marked).startswith("250 ")
    with db.session() as s:
        message = s.scalars(select(Message)).one()
        assert message.rcpt_tos == ["team@alias.test"]
        assert sorted(d.destination for d in message.deliveries) == ["a@dest.test", "b@other.test"]


def test_a_session_guessing_addresses_is_closed(raw_client, db):
    client = raw_client()
    session(client)
    client.send(b"".join(b"RCPT TO:<guess%d@alias.test>\r\n" % n for n in range(21)))
    answers = [client.reply() for _ in range(21)]
    assert answers[:20] == [replies.UNKNOWN_RECIPIENT] * 20
    assert answers[20] == replies.TOO_MANY_ERRORS
    assert client.closed()
    assert message_count(db) == 0


def test_shutdown_tells_open_sessions_421(world, settings, db):
    from smtp.server import ServerThread
    from tests.smtp.conftest import RawClient

    thread = ServerThread(settings)
    client = RawClient(thread.start())
    try:
        session(client)
        thread.stop()
        assert client.reply() == "421 4.3.2 mx.mailferry.test Service shutting down"
        assert client.closed()
    finally:
        client.close()
        thread.stop()


def test_sessions_per_client_address_are_limited(world, start_server, raw_client):
    address = start_server(SMTP_MAX_CONNECTIONS_PER_IP=2)
    first, second = raw_client(address), raw_client(address)
    assert first.greeting.startswith("220 ") and second.greeting.startswith("220 ")
    third = raw_client(address)
    assert third.greeting == "421 4.7.0 mx.mailferry.test Too many connections from your address, try again later"
    assert third.closed()
    assert first.cmd("QUIT") == "221 2.0.0 Bye" and first.closed()
    for _ in range(50):  # the server sees the QUIT's close on its own loop
        fourth = raw_client(address)
        if fourth.greeting.startswith("220 "):
            break
        time.sleep(0.05)
    assert fourth.greeting.startswith("220 ") and fourth.cmd("NOOP").startswith("250")
    assert second.cmd("NOOP").startswith("250")
