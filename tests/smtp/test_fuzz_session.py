"""Random SMTP sessions against one live server: it never crashes, never leaks an exception to the client,
answers only well-formed replies, queues exactly what it said it queued, and serves the next client."""

from __future__ import annotations

import re
import socket
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailferry.models import Message
from smtp import replies
from smtp.certs import ensure_self_signed
from tests.smtp.conftest import CATCH_ALL_DOMAIN, RawClient
from tests.smtp.strategies import CLEAN_HEADERS, VALID_RCPT, dot_stuffed, messages, packets, sessions

REPLY_LINE = re.compile(rb"^[2-5][0-9]{2}([ -][\x20-\x7e]*)?$")
STARTTLS_READY = re.compile(rb"^220 2\.0\.0 Ready to start TLS\r\n", re.MULTILINE)
QUEUED_ID = re.compile(rb"^250 2\.0\.0 Ok: queued as ([A-Z2-7]{16})\r$", re.MULTILINE)
# What aiosmtpd or Python would show of an exception: a traceback, aiosmtpd's "500 Error: (ValueError) ..."
# and any exception class name (no reply quotes the client's bytes, so these never come from them).
LEAKS = re.compile(rb"Traceback|File \"|Error: \(|\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:Error|Exception)\b|errno")
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # handshake_failure: a client giving up on TLS
END = b"\r\n.\r\nQUIT\r\n"  # ends a DATA left open, then the session
MESSAGE = (b"From: alice@sender.test\r\nTo: john@alias.test\r\nSubject: after the fuzz\r\n"
           b"Message-ID: <after@sender.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nStill here.\r\n")


class Conversation:
    """Everything the server sent in one session, and whether it reset the connection on us. The client
    sends `chunks` (reading what has come back before each), `handshake` once STARTTLS was answered, then
    `end`, and reads until the server closes."""

    def __init__(self, address: tuple[str, int], chunks: list[bytes], close_within: float, end: bytes = END,
                 handshake: bytes | None = None):
        self.received = bytearray()
        self.reset = False  # the server reset the connection: replies it sent may be lost
        self.closed = False  # the server closed it (all it sent has been read)
        sock = socket.create_connection(address, timeout=close_within)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._send(sock, chunks)
            if handshake is not None and self._wait_for_tls(sock):
                self._send(sock, [handshake])
            self._send(sock, [end])
            self._read_to_end(sock, close_within)
        finally:
            sock.close()

    def _send(self, sock: socket.socket, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._drain(sock)
            if self.reset or self.closed:
                return
            try:
                sock.sendall(chunk)
            except OSError:  # the server closed (QUIT, 421): the rest goes nowhere
                self.reset = True
                return

    def _wait_for_tls(self, sock: socket.socket, within: float = 0.5) -> bool:
        """True once the server said 220 to STARTTLS (bytes sent before it would be discarded)."""
        deadline = time.monotonic() + within
        while not (STARTTLS_READY.search(self.received) or self.reset or self.closed) and time.monotonic() < deadline:
            time.sleep(0.005)
            self._drain(sock)
        return bool(STARTTLS_READY.search(self.received))

    def _drain(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            while chunk := sock.recv(65536):
                self.received += chunk
            self.closed = True
        except BlockingIOError:
            pass
        except OSError:
            self.reset = True
        finally:
            sock.setblocking(True)

    def _read_to_end(self, sock: socket.socket, close_within: float) -> None:
        deadline = time.monotonic() + close_within
        while not self.closed and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                self.reset = True
                return
            self.received += chunk
            self.closed = not chunk
        if not self.closed:
            raise AssertionError(f"the server neither answered QUIT nor closed; it sent {bytes(self.received)!r}")


def deliverable(rcpt: str) -> bool:
    """An address the seeded world forwards: the enabled alias the sessions use, or any at the catch-all."""
    return rcpt.lower() == VALID_RCPT or rcpt.lower().endswith("@" + CATCH_ALL_DOMAIN)


def message_ids(db) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Message.id)))


def plaintext(received: bytes) -> bytes:
    """What came before TLS: after the reply to STARTTLS the client's bytes were a (failed) TLS handshake."""
    starttls = STARTTLS_READY.search(received)
    return received[:starttls.end()] if starttls else received


def assert_well_formed(received: bytes) -> None:
    assert received.startswith(b"220 "), received[:200]
    received = plaintext(received)
    assert received.endswith(b"\r\n") or not received, received[-200:]
    for line in received.split(b"\r\n")[:-1]:
        assert REPLY_LINE.match(line), line
        assert len(line) + 2 <= 512, line
    assert not LEAKS.search(received), LEAKS.search(received)


def assert_serves_a_transaction(address: tuple[str, int], db) -> None:
    commands = (b"EHLO client.example.org\r\nMAIL FROM:<alice@sender.test>\r\nRCPT TO:<" + VALID_RCPT.encode()
                + b">\r\nDATA\r\n")
    conversation = Conversation(address, [commands, MESSAGE], close_within=10, end=b".\r\nQUIT\r\n")
    [queued] = QUEUED_ID.findall(conversation.received)
    with db.session() as s:
        assert s.get(Message, queued.decode()).raw == MESSAGE


@settings(max_examples=3 * settings.default.max_examples)
@given(st.data())
def test_random_sessions_get_well_formed_replies_and_queue_only_what_was_acknowledged(shared_server, data):
    session, handshake = data.draw(sessions(), label="session")
    if handshake is None and b"starttls" in session.lower():  # else a 220 to it waits for the idle timeout
        handshake = TLS_ALERT
    chunks = data.draw(packets(session), label="packets")
    before = message_ids(shared_server.db)
    idle = shared_server.settings.SMTP_IDLE_TIMEOUT

    conversation = Conversation(shared_server.address, chunks, close_within=idle + 5, handshake=handshake)

    assert_well_formed(bytes(conversation.received))
    acknowledged = {m.decode() for m in QUEUED_ID.findall(conversation.received)}
    stored = message_ids(shared_server.db) - before
    assert acknowledged <= stored  # every 250 is a stored message
    if not conversation.reset:  # a reset may have swallowed replies the server did send
        assert stored == acknowledged  # and nothing was stored that the client was not told about
    with shared_server.db.session() as s:
        for message in s.scalars(select(Message).where(Message.id.in_(stored))):
            assert message.rcpt_tos and all(map(deliverable, message.rcpt_tos)), message.rcpt_tos
    assert_serves_a_transaction(shared_server.address, shared_server.db)
    assert shared_server.errors.take() == []  # no exception inside a session, no failed commit


def replies_in(received: bytes) -> list[bytes]:
    """The replies, a multi-line one as one (its last line)."""
    return [line for line in received.split(b"\r\n")[:-1] if line[3:4] != b"-"]


@settings(max_examples=settings.default.max_examples)
@given(st.data())
def test_pipelined_transactions_get_one_reply_per_command_and_are_stored_byte_for_byte(shared_server, data):
    """Well-formed transactions pipelined in one go, in packets cut anywhere: one reply per command (the
    greeting, EHLO, then MAIL, RCPT, DATA's 354 and the message's 250 for each, QUIT's 221), and each message
    stored exactly as sent, dot-unstuffed."""
    sent = data.draw(st.lists(messages(), min_size=1, max_size=4), label="messages")
    session = b"EHLO client.example.org\r\n" + b"".join(
        b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<" + VALID_RCPT.encode() + b">\r\nDATA\r\n" + dot_stuffed(m)
        for m in sent) + b"QUIT\r\n"
    chunks = data.draw(packets(session), label="packets")

    conversation = Conversation(shared_server.address, chunks, close_within=10, end=b"")

    answers = replies_in(bytes(conversation.received))
    assert [a[:3] for a in answers] == [b"220", b"250"] + [b"250", b"250", b"354", b"250"] * len(sent) + [b"221"]
    queued = [QUEUED_ID.match(a + b"\r").group(1).decode() for a in answers[5::4]]
    with shared_server.db.session() as s:
        stored = [s.get(Message, message_id).raw for message_id in queued]
    for raw, message in zip(stored, sent, strict=True):  # a message without headers gets a Message-ID and Date
        assert raw == message if message.startswith(CLEAN_HEADERS) else raw.endswith(message), (raw, message)
    assert shared_server.errors.take() == []


def test_an_unknown_command_is_not_quoted_back(shared_server):
    """aiosmtpd quoted it: a NUL came back in the reply, and a 500-byte verb made a reply over 512 octets."""
    conversation = Conversation(shared_server.address, [b"\x00\r\n", b"A" * 500 + b"\r\n"], close_within=5)

    lines = bytes(conversation.received).split(b"\r\n")
    assert lines[1:3] == [replies.UNKNOWN_COMMAND.encode()] * 2


def test_a_failed_tls_handshake_is_no_error_and_the_next_client_is_served(shared_server):
    """Scanners and old clients fail handshakes all day: that was logged at ERROR with a traceback."""
    hello = b"EHLO client.example.org\r\nSTARTTLS\r\n"
    conversation = Conversation(shared_server.address, [hello], close_within=5,
                                handshake=b"\x16\x03\x01\x00\x10not a ClientHello")

    assert STARTTLS_READY.search(conversation.received)
    assert_serves_a_transaction(shared_server.address, shared_server.db)
    assert shared_server.errors.take() == []  # after a transaction: the failed session has been wound up


def test_a_message_ending_in_a_blank_line_gets_one_reply_when_its_terminator_comes_in_a_packet_of_its_own(
        shared_server):
    """The CRLF ending that blank line came back as an empty command: an extra 500 5.5.2 after the 250, one
    reply too many for a pipelining client (found by the malformed MIME corpus: a message of one blank line)."""
    client = RawClient(shared_server.address)
    for command in ("EHLO client.example.org", "MAIL FROM:<alice@sender.test>", f"RCPT TO:<{VALID_RCPT}>"):
        assert client.cmd(command).startswith("250")
    client.send(b"DATA\r\n\r\n.\r\nNOOP\r\n")  # DATA and an empty message in one packet, NOOP pipelined

    assert [client.reply()[:3], client.reply()[:23], client.reply(), client.cmd("QUIT")[:3]] == [
        "354", "250 2.0.0 Ok: queued as", "250 2.0.0 OK", "221"]
    client.close()


def test_a_client_idle_in_the_tls_handshake_is_closed_and_frees_its_connection_slot(world, start_server, tmp_path):
    """The idle timeout in the handshake left the session waiting forever, holding its slot: with one
    connection allowed per address, that address got 421 4.7.0 from then on."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "mx.mailferry.test")
    address = start_server(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key, SMTP_MAX_CONNECTIONS_PER_IP=1, SMTP_IDLE_TIMEOUT=1)
    stalled = RawClient(address)
    stalled.cmd("EHLO client.example.org")
    assert stalled.cmd("STARTTLS").startswith("220")

    assert stalled.closed()  # after SMTP_IDLE_TIMEOUT, no handshake having come
    stalled.close()
    client = RawClient(address)
    assert client.greeting.startswith("220 mx.mailferry.test")
    client.close()
