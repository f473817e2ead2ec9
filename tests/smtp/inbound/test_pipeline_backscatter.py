"""Backscatter: a DSN goes back only to a sender that proved the address is theirs, never for automatic mail,
and at most DSN_MAX_PER_SENDER_DOMAIN_PER_HOUR per sender domain; the failure stays recorded either way."""

from __future__ import annotations

import logging

import pytest

from harness.settings import make_settings
from mailferry.models.message import BOUNCED
from smtp.delivery import context
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import deliveries, dsn_ids
from tests.smtp.inbound.conftest import DEST_DOMAIN, compose, send, stored

REFUSED = f"bob@{DEST_DOMAIN}"


@pytest.fixture
def refusing(site):
    """The alias john@ forwards to a destination that refuses the recipient with 550."""
    sink = site.destination()
    sink.handler.rcpt_replies[REFUSED] = "550 5.1.1 No such user"
    return sink


def bounce_once(server, ctx, db, sender: str, extra: str = "", n: int = 1) -> str:
    reply = send(server, compose(f"Sender <{sender}>", message_id=f"<b-{n}@{sender.split('@')[1]}>", extra=extra),
                 mail_from=sender)
    assert reply.code == 250, reply.line
    run(ctx, reply.message_id)
    [delivery] = deliveries(db, reply.message_id)
    assert delivery.state == BOUNCED and delivery.last_code == 550
    return reply.message_id


def withheld(caplog, message_id: str) -> list[str]:
    return [r.reason for r in caplog.records if r.getMessage() == "DSN not sent" and r.message_id == message_id]


@pytest.mark.parametrize("spf, domain_policy", [
    ("v=spf1 ip4:192.0.2.1 ~all", None),  # softfail: forwarded, but nothing proves the address
    ("v=spf1 ip4:192.0.2.1 -all", "forward"),  # fail, and the alias domain forwards such mail anyway
    (None, None),  # no SPF record, no DKIM
], ids=["softfail", "fail-forwarded", "none"])
def test_no_dsn_to_an_unauthenticated_sender(site, senders, refusing, inbound, db, ctx, caplog, spf, domain_policy):
    site.alias(site.domain(dmarc_quarantine_policy=domain_policy) if domain_policy else site.domain())
    senders.add("unproven-example.com", spf=spf, dmarc=None)
    server = inbound()

    with caplog.at_level(logging.INFO, logger="smtp.delivery.settle"):
        message_id = bounce_once(server, ctx, db, "alice@unproven-example.com")

    assert stored(db, message_id).dsn_block == "sender not authenticated"
    assert dsn_ids(db) == []
    assert withheld(caplog, message_id) == ["sender not authenticated"]


def test_no_dsn_for_an_auto_reply_even_from_an_authenticated_sender(site, senders, refusing, inbound, db, ctx, caplog):
    site.alias(site.domain())
    senders.add("replier-example.com", dmarc=None)
    server = inbound()

    with caplog.at_level(logging.INFO, logger="smtp.delivery.settle"):
        message_id = bounce_once(server, ctx, db, "alice@replier-example.com", extra="Auto-Submitted: auto-replied\r\n")

    assert dsn_ids(db) == []
    assert withheld(caplog, message_id) == ["auto-submitted"]


def test_an_authenticated_sender_gets_its_dsn(site, senders, refusing, inbound, db, ctx):
    site.alias(site.domain())
    senders.add("proven-example.com", dmarc=None)
    server = inbound()

    message_id = bounce_once(server, ctx, db, "alice@proven-example.com")

    assert stored(db, message_id).dsn_block == ""
    [dsn] = dsn_ids(db)
    [to_sender] = deliveries(db, dsn)
    assert to_sender.destination == "alice@proven-example.com"


def test_dsns_per_sender_domain_are_capped_per_hour(site, senders, refusing, inbound, db, env, caplog):
    site.alias(site.domain())
    senders.add("busy-example.com", dmarc=None)
    server = inbound()
    ctx = context.configure(make_settings(**{**env, "DSN_MAX_PER_SENDER_DOMAIN_PER_HOUR": "1"}))
    try:
        with caplog.at_level(logging.INFO, logger="smtp.delivery.settle"):
            first = bounce_once(server, ctx, db, "alice@busy-example.com", n=1)
            assert len(dsn_ids(db)) == 1
            second = bounce_once(server, ctx, db, "bob@busy-example.com", n=2)
    finally:
        context.reset()

    assert len(dsn_ids(db)) == 1
    assert withheld(caplog, first) == []
    [why] = withheld(caplog, second)
    assert "busy-example.com" in why and "cap is 1" in why
