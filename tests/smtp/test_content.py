"""Content checks and reply wording, no sockets."""

from __future__ import annotations

import pytest

from smtp import replies
from smtp.content import check_content, has_bare_line_ending, header_section, received_count


@pytest.mark.parametrize("raw, bare", [
    (b"a\r\nb\r\n", False), (b"", False), (b"a\nb\r\n", True), (b"a\rb\r\n", True),
    (b"a\r\r\n", True), (b"a\r\n\n", True), (b"\n", True), (b"\r", True),
])
def test_bare_line_endings(raw, bare):
    assert has_bare_line_ending(raw) is bare


def test_received_headers_are_counted_in_the_header_section_only():
    raw = b"Received: a\r\nRECEIVED : b\r\nX-Received: no\r\nSubject: s\r\n\r\nReceived: body\r\n"
    assert header_section(raw) == b"Received: a\r\nRECEIVED : b\r\nX-Received: no\r\nSubject: s\r\n"
    assert received_count(raw) == 2
    assert received_count(b"\r\nReceived: x\r\n") == 0  # no headers at all


def test_check_content_loop_limit():
    loop = b"Received: x\r\n" * 31 + b"\r\nbody\r\n"
    assert check_content(loop, 30) == replies.MAIL_LOOP
    assert check_content(loop, 31) is None


@pytest.mark.parametrize("raw, fixed", [
    ("250 OK", "250 2.0.0 OK"),
    ("221 Bye", "221 2.0.0 Bye"),
    ("503 Error: need RCPT command", "503 5.5.1 Error: need RCPT command"),
    ("500 Command line too long", replies.LINE_TOO_LONG),
    ("552 Error: Too much mail data", replies.MESSAGE_TOO_BIG),
    ("553 5.1.3 Error: malformed address", replies.MALFORMED_ADDRESS),
    ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
    (replies.UNKNOWN_RECIPIENT, replies.UNKNOWN_RECIPIENT),
])
def test_enhanced_codes_are_added_to_aiosmtpd_replies(raw, fixed):
    assert replies.with_enhanced_code(raw) == fixed


@pytest.mark.parametrize("arg", [
    "<a@example.org>", "<a.b+c@sub.example.org> SIZE=100", " <x-y_z@d.e>", "<A!#$%&'*+/=?^_`{|}~-@x.y>",
    "<a..b@x.y>", "<.a@x.y>", "<a@x..y>", "<a@[1.2.3.4]>", '<"q s"@x.y>', "<>", "a@x.y", "<a@x.y", "<@r:a@x.y>",
    "<a@-x.y>", "<a@x.y> BODY=8BITMIME", "<a@x.y>  (comment) SIZE=1", "<a@x.y>\tSIZE=1", " \t<a@x.y>",
])
def test_fast_address_parse_agrees_with_aiosmtpd(arg):
    from aiosmtpd.smtp import SMTP

    from smtp.protocol import InboundSMTP

    protocol = InboundSMTP.__new__(InboundSMTP)  # _getaddr needs no connection state
    assert protocol._getaddr(arg) == SMTP._getaddr(protocol, arg)


def test_loop_markers_from_the_header_section():
    from smtp.content import loop_markers

    raw = (b"X-Mailferry-Loop: John@Alias.test\r\nx-mailferry-loop:<team@alias.test> \r\nSubject: s\r\n\r\n"
           b"X-Mailferry-Loop: body@alias.test\r\n")
    assert loop_markers(raw) == {"john@alias.test", "team@alias.test"}
    assert loop_markers(b"Subject: s\r\n\r\n") == set()


def test_header_section_is_capped(monkeypatch):
    monkeypatch.setattr("smtp.content.HEADER_LIMIT", 64)
    raw = b"Received: x\r\n" * 10 + b"\r\nbody\r\n"
    assert header_section(raw) == raw[:64]
    assert received_count(raw) == 5  # four whole lines and the start of a fifth
