from email import message_from_bytes
from email.policy import default

import pytest

from smtp.from_rewrite import display_name, rewrite_from

RAW = (b"Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n"
       b"From: =?utf-8?q?Ren=C3=A9e?= <renee@sender.test>\r\n"
       b"To: hello@alias.test\r\n"
       b"Subject: hi\r\n"
       b"\r\n"
       b"body line 1\r\nbody line 2\r\n")


def test_rewrites_from_keeps_reply_path_and_body():
    out, original = rewrite_from(RAW, account="relay@gmail.test", alias_address="hello@alias.test")
    assert original == "renee@sender.test"
    msg = message_from_bytes(out, policy=default)
    assert msg["From"].addresses[0].addr_spec == "relay@gmail.test"
    assert msg["From"].addresses[0].display_name == "Renée via alias.test"
    assert msg["Reply-To"].addresses[0].addr_spec == "renee@sender.test"
    assert "renee@sender.test" in msg["X-Original-From"]
    assert out.endswith(b"\r\n\r\nbody line 1\r\nbody line 2\r\n")
    assert b"=?utf-8?" in out.split(b"\r\nTo:")[0]  # the non-ASCII name stays an encoded-word
    assert out.startswith(b"Received: from a by b;")
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_existing_reply_to_is_kept():
    raw = RAW.replace(b"Subject: hi\r\n", b"Subject: hi\r\nReply-To: list@sender.test\r\n")
    out, _ = rewrite_from(raw, account="relay@gmail.test", alias_address="hello@alias.test")
    msg = message_from_bytes(out, policy=default)
    assert msg.get_all("Reply-To") == ["list@sender.test"]


def _from(raw: bytes) -> str:
    out, _ = rewrite_from(raw, account="relay@gmail.test", alias_address="hello@alias.test")
    return message_from_bytes(out, policy=default)["From"].addresses[0].display_name


@pytest.mark.parametrize("from_, expected", [
    (b"alice@sender.test", "alice at sender.test via alias.test"),
    (b"<alice@sender.test>", "alice at sender.test via alias.test"),
    (b'"alice@sender.test" <alice@sender.test>', "alice at sender.test via alias.test"),
    (b'"Alice (alice@other.test)" <alice@sender.test>', "Alice (alice at other.test) via alias.test"),
    (b'"Bob @ Home" <bob@sender.test>', "Bob at Home via alias.test"),
    (b"=?utf-8?q?boss=EF=BC=A0bank.test?= <boss@sender.test>", "boss at bank.test via alias.test"),  # U+FF20
])
def test_no_address_ends_up_in_the_display_name(from_, expected):
    name = _from(RAW.replace(b"=?utf-8?q?Ren=C3=A9e?= <renee@sender.test>", from_))
    assert name == expected
    assert "@" not in name


def test_a_message_without_from_gets_a_placeholder_name():
    assert display_name("", "", "hello@alias.test") == "unknown sender via alias.test"
    raw = RAW.replace(b"From: =?utf-8?q?Ren=C3=A9e?= <renee@sender.test>\r\n", b"")
    assert _from(raw) == "unknown sender via alias.test"
