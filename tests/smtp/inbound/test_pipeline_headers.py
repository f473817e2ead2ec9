"""Header changes before spooling: a missing Message-ID and Date are added, unless the sender's DKIM
signature lists them in h= (adding them would break it)."""

from __future__ import annotations

import re

import dkim

from tests.smtp.delivery.helpers import dkim_verifies
from tests.smtp.inbound.conftest import HOSTNAME, compose, send, sign, stored


def header_names(raw: bytes) -> list[bytes]:
    return [k.lower() for k, _ in dkim.rfc822_parse(raw)[0]]


def test_missing_message_id_and_date_are_added(site, senders, inbound, db):
    site.alias(site.domain())
    senders.add("bare-example.com", dmarc=None)
    raw = compose("Alice <alice@bare-example.com>", message_id=None, date=None)
    server = inbound()

    reply = send(server, raw, mail_from="alice@bare-example.com")

    assert reply.code == 250, reply.line
    spooled = stored(db, reply.message_id).raw
    headers = dict((k.lower(), v) for k, v in dkim.rfc822_parse(spooled)[0])
    assert headers[b"message-id"].strip() == f"<{reply.message_id}@{HOSTNAME}>".encode()
    assert re.match(rb"^ \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n$", headers[b"date"]), headers[b"date"]
    assert spooled.endswith(raw.split(b"\r\n\r\n", 1)[1])


def test_present_ones_are_left_alone(site, senders, inbound, db):
    site.alias(site.domain())
    senders.add("full-example.com", dmarc=None)
    raw = compose("Alice <alice@full-example.com>", message_id="<m-1@full-example.com>")
    server = inbound()

    reply = send(server, raw, mail_from="alice@full-example.com")

    assert reply.code == 250, reply.line
    assert stored(db, reply.message_id).raw == raw


def test_not_added_when_the_senders_signature_covers_their_absence(site, senders, inbound, db, ctx):
    site.alias(site.domain())
    key = senders.add("signed-bare-example.com", dmarc=None, dkim_key=True)
    raw = sign(compose("Alice <alice@signed-bare-example.com>", message_id=None, date=None), key,
               include=[b"from", b"to", b"subject", b"message-id", b"date"])
    server = inbound()

    reply = send(server, raw, mail_from="alice@signed-bare-example.com")

    assert reply.code == 250, reply.line
    spooled = stored(db, reply.message_id).raw
    assert b"message-id" not in header_names(spooled) and b"date" not in header_names(spooled)
    assert spooled == raw
    assert dkim_verifies(spooled, ctx.settings)
