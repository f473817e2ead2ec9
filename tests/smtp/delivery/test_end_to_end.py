"""smtplib -> inbound server -> RQ -> `python worker.py` -> destination MX, all real, all on loopback.

Runs once the inbound server (`smtp.server.ServerThread`) is on the branch.
"""

from __future__ import annotations

import smtplib

import pytest

from harness.net import wait_for
from smtp.srs import Srs
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import dkim_verifies

server = pytest.importorskip("smtp.server")


def test_accepted_mail_reaches_the_destination_srs_rewritten_signed_and_intact(world, internet, workers, dsettings):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    worker = workers()
    inbound = server.ServerThread(dsettings.replace(SMTP_LISTEN=("127.0.0.1", 0)))
    host, port = inbound.start()
    try:
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("client.sender.test")
            options = ["BODY=8BITMIME"] if client.has_extn("8bitmime") else []
            refused = client.sendmail("alice@sender.test", [route.recipient], ORIGINAL, mail_options=options)
        assert refused == {}
        wait_for(lambda: sink.messages, timeout=30, what=f"delivery; worker log:\n{worker.log()}")
    finally:
        inbound.stop()

    [got] = sink.messages
    assert got.rcpt_tos == ("bob@dest.test",)
    assert Srs(dsettings.srs_secret).reverse(got.mail_from) == "alice@sender.test"
    assert got.data.endswith(ORIGINAL)
    assert dkim_verifies(got.data, dsettings)


def test_a_forwarding_loop_ends_in_one_bounce_to_the_original_sender(world, internet, workers, dsettings):
    """hello@ -> loop@ -> hello@ again: inbound refuses the second pass (554 5.4.6), the worker bounces it to
    its SRS envelope sender, which inbound accepts and returns to the original sender."""
    domain_id = world.domain("alias.test")
    world.alias(domain_id, "hello", "loop@alias.test")
    world.alias(domain_id, "loop", "hello@alias.test")
    internet.mx("alias.test", (10, "mx.alias.test", "127.0.0.9"))  # that is us
    internet.mx("sender.test", (10, "mx.sender.test", "127.0.0.3"))
    sender = internet.sink("127.0.0.3")
    worker = workers()
    inbound = server.ServerThread(dsettings.replace(SMTP_LISTEN=("127.0.0.9", internet.port)))
    inbound.start()
    try:
        with smtplib.SMTP("127.0.0.9", internet.port, timeout=10) as client:
            client.sendmail("alice@sender.test", ["hello@alias.test"], ORIGINAL)
        wait_for(lambda: sender.messages, timeout=60, what=f"the bounce; worker log:\n{worker.log()}")
    finally:
        inbound.stop()

    [bounce] = sender.messages
    assert (bounce.mail_from, bounce.rcpt_tos) == ("<>", ("alice@sender.test",))
    assert b"Status: 5.4.6" in bounce.data


def test_smuggled_transactions_never_reach_a_destination(world, internet, workers, dsettings, db):
    """Every smtpsmug look-alike with a second transaction behind it, then one real message: after the worker
    has run, the destination has received that one message, once."""
    from sqlalchemy import select

    from mailferry.models import Delivery
    from mailferry.models.message import DELIVERED
    from tests.smtp.conftest import RawClient
    from tests.smtp.test_server_smuggling import SMUGGLED, VARIANTS

    def delivered() -> bool:
        with db.session() as s:
            return s.scalars(select(Delivery.state)).all() == [DELIVERED]

    stuffed = ORIGINAL.replace(b"\r\n.", b"\r\n..")
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    world.alias(world.domain("other.test"), "team", "ceo@dest.test")  # what the smuggled RCPT asks for
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    worker = workers()
    inbound = server.ServerThread(dsettings.replace(SMTP_LISTEN=("127.0.0.1", 0)))
    client = RawClient(inbound.start())
    try:
        client.cmd("EHLO client.sender.test")
        for look_alike, refusal in VARIANTS:
            client.cmd("MAIL FROM:<alice@sender.test>")
            client.cmd(f"RCPT TO:<{route.recipient}>")
            client.cmd("DATA")
            client.send(stuffed + b"first" + look_alike + SMUGGLED.replace(b"alias.test", b"other.test") + b"\r\n.\r\n")
            assert client.reply() == refusal
        assert client.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
        assert client.cmd(f"RCPT TO:<{route.recipient}>").startswith("250")
        client.cmd("DATA")
        client.send(stuffed + b".\r\n")
        assert client.reply().startswith("250 2.0.0 Ok: queued as ")
        client.cmd("QUIT")
        wait_for(delivered, timeout=30, what=f"delivery; worker log:\n{worker.log()}")
    finally:
        client.close()
        inbound.stop()
    [got] = sink.messages
    assert got.rcpt_tos == ("bob@dest.test",)
    assert got.data.endswith(ORIGINAL) and b"smuggled" not in got.data
