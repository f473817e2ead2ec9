from email import message_from_bytes
from email.policy import default

from smtp.from_rewrite import rewrite_from

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
    assert msg["From"].addresses[0].display_name == "Renée via hello@alias.test"
    assert msg["Reply-To"].addresses[0].addr_spec == "renee@sender.test"
    assert "renee@sender.test" in msg["X-Original-From"]
    assert out.endswith(b"\r\n\r\nbody line 1\r\nbody line 2\r\n")
    assert out.startswith(b"Received: from a by b;")
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_existing_reply_to_is_kept():
    raw = RAW.replace(b"Subject: hi\r\n", b"Subject: hi\r\nReply-To: list@sender.test\r\n")
    out, _ = rewrite_from(raw, account="relay@gmail.test", alias_address="hello@alias.test")
    msg = message_from_bytes(out, policy=default)
    assert msg.get_all("Reply-To") == ["list@sender.test"]
