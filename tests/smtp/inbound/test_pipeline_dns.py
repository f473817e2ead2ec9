"""DNS that does not answer at the end of DATA: 451 4.7.0 within the message's budget, nothing stored, and the
budget is one for the whole message, not one per lookup."""

from __future__ import annotations

import time

from tests.smtp.inbound.conftest import compose, message_count, send, sign


def test_a_dns_timeout_is_answered_451_within_the_budget_and_nothing_is_stored(site, senders, dns_server,
                                                                               inbound, db):
    site.alias(site.domain())
    senders.add("slow-example.com", dmarc="v=DMARC1; p=reject")
    dns_server.drop("slow-example.com")  # the SPF record of the envelope sender times out
    server = inbound(DNS_TIMEOUT="1", INBOUND_DNS_BUDGET="2s")

    started = time.monotonic()
    reply = send(server, compose("Alice <alice@slow-example.com>"), mail_from="alice@slow-example.com")
    elapsed = time.monotonic() - started

    assert reply.code == 451 and reply.text.startswith("4.7.0 "), reply.line
    assert elapsed < 3.5, elapsed
    assert message_count(db) == 0


def test_several_names_timing_out_still_answer_within_one_budget(site, senders, dns_server, inbound, db):
    site.alias(site.domain())
    key = senders.add("slower-example.com", dkim_key=True)
    raw = sign(compose("Alice <alice@slower-example.com>", message_id="<s-2@slower-example.com>"), key)
    for name in ("slower-example.com", "s1._domainkey.slower-example.com", "_dmarc.slower-example.com"):
        dns_server.drop(name)  # SPF, the DKIM key, DMARC: 3 x DNS_TIMEOUT = 6 s if each had its own time
    server = inbound(DNS_TIMEOUT="2", INBOUND_DNS_BUDGET="2s")

    started = time.monotonic()
    reply = send(server, raw, mail_from="alice@slower-example.com")
    elapsed = time.monotonic() - started

    assert reply.code == 451 and reply.text.startswith("4.7.0 "), reply.line
    assert elapsed < 3.5, elapsed
    assert message_count(db) == 0
