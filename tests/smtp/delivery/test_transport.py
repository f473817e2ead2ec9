"""DirectTransport on the wire, against real SMTP servers on loopback: PIPELINING (RFC 2920) with per-recipient
replies, the lock-step path for servers without it, and reuse of a parked connection without an RSET."""

from __future__ import annotations

import pytest

from harness.net import wait_for
from smtp.delivery import transport as transport_module
from smtp.delivery.exchange import Transaction, dot_stuffed
from smtp.delivery.mx import MxHost

MX = [MxHost(10, "mx.dest.test", ("127.0.0.2",))]

DOTTED = (
    b"From: a@sender.test\r\n"
    b"Subject: dots\r\n"
    b"\r\n"
    b".leading dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"middle . and a final line\r\n"
    b"caf\xc3\xa9\r\n"
)


def _tx(*recipients: str, data: bytes = DOTTED, sender: str = "srs@alias.test") -> Transaction:
    return Transaction(sender, list(recipients), data)


def _codes(result) -> dict[str, int | None]:
    return {recipient: reply.code for recipient, reply in result.replies.items()}


def _envelope_writes(writes: list[bytes]) -> list[bytes]:
    return [w for w in writes if w.startswith((b"MAIL", b"RCPT", b"DATA"))]


def _body_writes(writes: list[bytes]) -> list[bytes]:
    return [w for w in writes if w == b".\r\n" or w.endswith(b"\r\n.\r\n")]


def test_dot_stuffing():
    assert dot_stuffed(b".a\r\nb\r\n..c\r\n.\r\n") == b"..a\r\nb\r\n...c\r\n..\r\n.\r\n"
    assert dot_stuffed(b"no final line end") == b"no final line end\r\n.\r\n"
    assert dot_stuffed(b"") == b"\r\n.\r\n"


def test_pipelined_transaction_delivers_the_message_byte_for_byte(direct, command_sink, writes):
    sink = command_sink("127.0.0.2")
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test")])

    assert _codes(result) == {"bob@dest.test": 250, "carol@dest.test": 250}
    [received] = sink.messages
    assert received.data == DOTTED and received.rcpt_tos == ("bob@dest.test", "carol@dest.test")
    assert received.mail_from == "srs@alias.test"
    # one write for the envelope and DATA, one for the body with its final dot
    assert _envelope_writes(writes) == [b"MAIL FROM:<srs@alias.test> SIZE=%d BODY=8BITMIME\r\n"
                                        b"RCPT TO:<bob@dest.test>\r\nRCPT TO:<carol@dest.test>\r\nDATA\r\n"
                                        % len(DOTTED)]
    assert _body_writes(writes) == [dot_stuffed(DOTTED)]
    assert sink.handler.commands == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"]


def test_pipelined_transaction_into_postfix_smtp_sink(direct, postfix_sink, writes):
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test")])

    assert _codes(result) == {"bob@dest.test": 250, "carol@dest.test": 250}
    assert len(_envelope_writes(writes)) == 1  # smtp-sink offers PIPELINING
    dump = wait_for(postfix_sink.dump, what="smtp-sink's dump")
    assert b"X-Mail-Args: <srs@alias.test> BODY=8BITMIME\n" in dump  # it offers no SIZE
    assert b"X-Rcpt-Args: <bob@dest.test>\nX-Rcpt-Args: <carol@dest.test>\n" in dump
    # smtp-sink undoes the dot-stuffing and writes LF line ends
    assert dump.endswith(b"\n" + DOTTED.replace(b"\r\n", b"\n") + b"\n")


def test_one_refused_recipient_gets_its_own_reply_under_pipelining(direct, command_sink):
    sink = command_sink("127.0.0.2")
    sink.handler.rcpt_replies["carol@dest.test"] = "550 5.1.1 no such user"
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test", "dan@dest.test")])

    assert _codes(result) == {"bob@dest.test": 250, "carol@dest.test": 550, "dan@dest.test": 250}
    assert result.replies["carol@dest.test"].text == "5.1.1 no such user"
    [received] = sink.messages
    assert received.rcpt_tos == ("bob@dest.test", "dan@dest.test") and received.data == DOTTED


def test_the_reply_to_the_body_goes_to_every_accepted_recipient(direct, command_sink):
    sink = command_sink("127.0.0.2")
    sink.handler.rcpt_replies["carol@dest.test"] = "450 4.2.1 try later"
    sink.handler.data_replies.append("554 5.7.1 content refused")
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test", "dan@dest.test")])

    assert _codes(result) == {"bob@dest.test": 554, "carol@dest.test": 450, "dan@dest.test": 554}
    assert result.replies["bob@dest.test"].text == "5.7.1 content refused"
    assert sink.messages == []


def test_no_recipient_accepted_sends_no_body_under_pipelining(direct, command_sink, writes):
    sink = command_sink("127.0.0.2")
    sink.handler.rcpt_replies.update({"bob@dest.test": "550 5.1.1 no bob", "carol@dest.test": "450 4.2.2 full"})
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test")])

    assert {r: str(reply) for r, reply in result.replies.items()} == {
        "bob@dest.test": "550 5.1.1 no bob", "carol@dest.test": "450 4.2.2 full"}
    assert _body_writes(writes) == [] and sink.messages == []
    # DATA was refused (503, no valid recipient): the session is reset and stays good for the next message
    assert sink.handler.commands == ["EHLO", "MAIL", "RCPT", "RCPT", "RSET"]
    assert direct.has_parked(MX)


def test_data_accepted_without_recipients_gets_only_the_final_dot(direct, command_sink, writes):
    sink = command_sink("127.0.0.2")
    sink.handler.refused_rcpt_counts = True  # so DATA gets its 354 though the RCPT was refused
    sink.handler.rcpt_replies["bob@dest.test"] = "550 5.1.1 no bob"
    [result] = direct.send(MX, [_tx("bob@dest.test")])

    assert _codes(result) == {"bob@dest.test": 550}
    assert _body_writes(writes) == [b".\r\n"] and [m.data for m in sink.messages] == [b""]


def test_refused_mail_from_is_every_recipients_reply_under_pipelining(direct, command_sink, writes):
    sink = command_sink("127.0.0.2")
    sink.handler.mail_replies.append("553 5.7.1 sender refused")
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test")])

    assert {r: str(reply) for r, reply in result.replies.items()} == {
        "bob@dest.test": "553 5.7.1 sender refused", "carol@dest.test": "553 5.7.1 sender refused"}
    assert _body_writes(writes) == [] and sink.messages == []
    assert len(_envelope_writes(writes)) == 1  # the RCPTs and DATA went too, and aiosmtpd answered them 503
    assert sink.handler.commands == ["EHLO", "MAIL", "RSET"]


def test_without_pipelining_every_command_waits_for_its_reply(direct, command_sink, writes):
    sink = command_sink("127.0.0.2", pipelining=False)
    sink.handler.rcpt_replies["carol@dest.test"] = "550 5.1.1 no such user"
    [result] = direct.send(MX, [_tx("bob@dest.test", "carol@dest.test")])

    assert _codes(result) == {"bob@dest.test": 250, "carol@dest.test": 550}
    assert _envelope_writes(writes) == [b"MAIL FROM:<srs@alias.test> SIZE=%d BODY=8BITMIME\r\n" % len(DOTTED),
                                        b"RCPT TO:<bob@dest.test>\r\n", b"RCPT TO:<carol@dest.test>\r\n",
                                        b"DATA\r\n"]
    [received] = sink.messages
    assert received.data == DOTTED and received.rcpt_tos == ("bob@dest.test",)


def test_a_connection_parked_just_now_is_reused_without_rset(direct, command_sink, opened):
    sink = command_sink("127.0.0.2")
    for i in range(3):
        [result] = direct.send(MX, [_tx(f"user{i}@dest.test")])
        assert _codes(result) == {f"user{i}@dest.test": 250}

    assert opened == ["127.0.0.2"] and len({m.session_id for m in sink.messages}) == 1
    assert sink.handler.commands == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3


def test_a_connection_parked_longer_is_checked_with_rset(direct, command_sink, opened, monkeypatch):
    monkeypatch.setattr(transport_module, "REUSE_UNCHECKED", 0.0)
    sink = command_sink("127.0.0.2")
    list(direct.send(MX, [_tx("bob@dest.test")]))
    list(direct.send(MX, [_tx("carol@dest.test")]))

    assert opened == ["127.0.0.2"] and len(sink.messages) == 2
    assert sink.handler.commands == ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA"]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lock-step"])
def test_a_connection_the_server_closed_while_parked_is_replaced_at_once(direct, command_sink, opened,
                                                                         pipelining):
    sink = command_sink("127.0.0.2", pipelining=pipelining, hang_up_after_message=True)
    [first] = direct.send(MX, [_tx("bob@dest.test")])
    wait_for(lambda: sink.handler.hang_ups == 1, what="the server hanging up")
    assert direct.has_parked(MX)  # still parked on our side

    [second] = direct.send(MX, [_tx("carol@dest.test")])

    assert _codes(first) == {"bob@dest.test": 250} and _codes(second) == {"carol@dest.test": 250}
    assert opened == ["127.0.0.2", "127.0.0.2"]
    assert [m.rcpt_tos for m in sink.messages] == [("bob@dest.test",), ("carol@dest.test",)]
    assert "RSET" not in sink.handler.commands


def test_a_421_to_the_first_mail_on_a_reused_connection_is_replaced_at_once(direct, command_sink, opened):
    sink = command_sink("127.0.0.2")
    list(direct.send(MX, [_tx("bob@dest.test")]))
    sink.handler.mail_replies.append("421 4.4.2 idle too long, closing")

    [result] = direct.send(MX, [_tx("carol@dest.test")])

    assert _codes(result) == {"carol@dest.test": 250}
    assert opened == ["127.0.0.2", "127.0.0.2"]
    assert [m.rcpt_tos for m in sink.messages] == [("bob@dest.test",), ("carol@dest.test",)]


def test_a_421_to_mail_on_a_new_connection_defers_and_the_rest_try_the_next_host(direct, command_sink, opened):
    busy, spare = command_sink("127.0.0.2"), command_sink("127.0.0.3")
    busy.handler.mail_replies.append("421 4.3.2 too busy")
    hosts = [MxHost(10, "mx1.dest.test", ("127.0.0.2",)), MxHost(20, "mx2.dest.test", ("127.0.0.3",))]

    first, second = direct.send(hosts, [_tx("bob@dest.test"), _tx("carol@dest.test")])

    assert str(first.replies["bob@dest.test"]) == "421 4.3.2 too busy" and first.mx_host == "mx1.dest.test"
    assert _codes(second) == {"carol@dest.test": 250} and second.mx_host == "mx2.dest.test"
    assert opened == ["127.0.0.2", "127.0.0.3"] and busy.messages == [] and len(spare.messages) == 1
