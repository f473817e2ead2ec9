"""smtplib -> inbound server -> RQ -> `python worker.py` -> destination MX, all real, all on loopback.

Runs once the inbound server (`smtp.server.ServerThread`) is on the branch.
"""

from __future__ import annotations

import smtplib

import pytest

from smtp.srs import Srs
from tests.smtp.delivery.conftest import ORIGINAL
from tests.smtp.delivery.helpers import dkim_verifies
from tests.support.net import wait_for

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
