"""DMARC at the end of DATA, end to end: a p=reject domain's spoofed From refused, rewritten or quarantined by
the alias domain's policy; a legitimately signed sender forwarded with our Authentication-Results and its own
signature intact; results forged in our name removed; organisational domains from the Public Suffix List."""

from __future__ import annotations

import json
from email.utils import getaddresses

import dkim
from sqlalchemy import func, select

from mailferry.models import DeliveryAttempt
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.org_domain import aligned, organisational_domain
from smtp.delivery.job import run
from tests.smtp.delivery.helpers import dkim_verifies
from tests.smtp.inbound.conftest import (
    ALIAS_DOMAIN,
    HOSTNAME,
    arc_verifies,
    compose,
    message_count,
    send,
    sign,
    stored,
)

SPOOFED = "bank-example.com"  # p=reject, SPF -all that does not cover 127.0.0.1, no DKIM


def spoofed(senders) -> bytes:
    senders.add(SPOOFED, spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=reject")
    return compose(f"Bank Security <security@{SPOOFED}>", message_id=f"<spoof-1@{SPOOFED}>")


def results_of(db, message_id: str) -> dict[str, str]:
    data = json.loads(stored(db, message_id).auth_results)
    return {method: result for method, result, _ in data["results"]}


def test_spoofed_from_of_a_p_reject_domain_is_refused_at_end_of_data(site, senders, inbound, db):
    site.alias(site.domain())
    raw = spoofed(senders)
    server = inbound()

    reply = send(server, raw, mail_from=f"security@{SPOOFED}")

    assert reply.code == 550 and reply.text.startswith("5.7.1 "), reply.line
    assert SPOOFED in reply.text
    assert message_count(db) == 0


def test_rewrite_policy_forwards_with_the_from_rewritten_signed_and_arc_sealed(site, senders, inbound, db, ctx):
    site.alias(site.domain(dmarc_reject_policy="rewrite"))
    sink = site.destination()
    raw = spoofed(senders)
    server = inbound()

    reply = send(server, raw, mail_from=f"security@{SPOOFED}")
    assert reply.code == 250, reply.line
    message = stored(db, reply.message_id)
    assert message.state == QUEUED and message.rewrite_from

    run(ctx, reply.message_id)

    [got] = sink.messages
    headers = dict((k.lower(), v) for k, v in dkim.rfc822_parse(got.data)[0])
    [(name, address)] = getaddresses([headers[b"from"].decode().strip()])
    assert address == f"john@{ALIAS_DOMAIN}"
    assert "@" not in name and "via" in name, name  # a display name without an address in it
    assert SPOOFED not in address
    assert f"security@{SPOOFED}".encode() in headers[b"x-original-from"]
    assert dkim_verifies(got.data, ctx.settings, idx=0)  # ours, over the new From
    assert b"d=" + ALIAS_DOMAIN.encode() in headers[b"dkim-signature"]
    ok, why = arc_verifies(got.data, ctx.settings)
    assert ok, why


def test_quarantine_policy_stores_it_quarantined_and_nothing_is_delivered(site, senders, inbound, db, ctx):
    site.alias(site.domain(dmarc_reject_policy="quarantine"))
    sink = site.destination()
    raw = spoofed(senders)
    server = inbound()

    reply = send(server, raw, mail_from=f"security@{SPOOFED}")
    assert reply.code == 250, reply.line
    assert stored(db, reply.message_id).state == QUARANTINED

    run(ctx, reply.message_id)  # even a job for it (there is none) delivers nothing

    assert sink.messages == []
    assert stored(db, reply.message_id).state == QUARANTINED
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DeliveryAttempt)) == 0


def legit(senders, domain: str = "legit-example.com"):
    key = senders.add(domain, spf="v=spf1 ip4:127.0.0.1 -all", dmarc="v=DMARC1; p=reject", dkim_key=True)
    return key, sign(compose(f"Alice <alice@{domain}>", message_id=f"<legit-1@{domain}>"), key)


def test_a_signed_sender_is_forwarded_with_our_results_and_its_signature_intact(site, senders, inbound, db, ctx):
    site.alias(site.domain())
    sink = site.destination()
    key, raw = legit(senders)
    server = inbound()

    reply = send(server, raw, mail_from="alice@legit-example.com")
    assert reply.code == 250, reply.line
    run(ctx, reply.message_id)

    [got] = sink.messages
    assert got.data.endswith(raw)  # the original bytes, untouched
    prepended = got.data[: -len(raw)]
    fields = dkim.rfc822_parse(prepended + b"\r\n")[0]
    ours = [v for k, v in fields if k.lower() == b"authentication-results"]
    assert len(ours) == 1
    text = b" ".join(ours[0].split())
    assert text.startswith(HOSTNAME.encode() + b"; spf=pass smtp.mailfrom=alice@legit-example.com;"), text
    assert b"dkim=pass header.d=legit-example.com header.s=s1;" in text
    assert b"dmarc=pass header.from=legit-example.com" in text
    signatures = [v for k, v in dkim.rfc822_parse(got.data)[0] if k.lower() == b"dkim-signature"]
    assert b"d=legit-example.com" in signatures[1]
    assert dkim_verifies(got.data, ctx.settings, idx=1)  # the sender's
    assert dkim_verifies(got.data, ctx.settings, idx=0)  # ours
    assert arc_verifies(got.data, ctx.settings)[0]


def test_results_forged_in_our_name_are_removed_others_kept(site, senders, inbound, db, ctx):
    site.alias(site.domain())
    sink = site.destination()
    senders.add("forger-example.com", spf="v=spf1 ip4:127.0.0.1 -all", dmarc=None)
    forged = f"Authentication-Results: {HOSTNAME}; spf=pass smtp.mailfrom=ceo@forger-example.com\r\n"
    other = "Authentication-Results: mx.upstream-example.org; spf=pass smtp.mailfrom=ceo@forger-example.com\r\n"
    raw = compose("CEO <ceo@forger-example.com>", message_id="<f-1@forger-example.com>", extra=forged + other)
    server = inbound()

    reply = send(server, raw, mail_from="ceo@forger-example.com")
    assert reply.code == 250, reply.line
    run(ctx, reply.message_id)

    [got] = sink.messages
    assert forged.encode() not in got.data
    assert other.encode() in got.data
    values = [b" ".join(v.split()) for k, v in dkim.rfc822_parse(got.data)[0] if k.lower() == b"authentication-results"]
    ours = [v for v in values if v.startswith(HOSTNAME.encode() + b";")]
    assert len(ours) == 1 and b"dmarc=none" in ours[0], values  # only the one we wrote
    assert got.data.endswith(raw.replace(forged.encode(), b""))


def test_dkim_of_the_organisational_domain_aligns_through_the_public_suffix_list(site, senders, inbound, db):
    site.alias(site.domain())
    key = senders.add("example.co.uk", spf=None, dmarc="v=DMARC1; p=reject", dkim_key=True)
    senders.add("esp-example.net", spf="v=spf1 ip4:127.0.0.1 -all", dmarc=None)  # SPF passes, not aligned
    raw = sign(compose("Alice <alice@mail.example.co.uk>", message_id="<uk-1@mail.example.co.uk>"), key)
    server = inbound()

    reply = send(server, raw, mail_from="bounces@esp-example.net")

    assert reply.code == 250, reply.line
    results = results_of(db, reply.message_id)
    assert results["dkim"] == "pass" and results["dmarc"] == "pass", results


def test_dkim_of_another_domain_under_the_same_public_suffix_does_not_align(site, senders, inbound, db):
    site.alias(site.domain())
    senders.add("example.co.uk", spf=None, dmarc="v=DMARC1; p=reject")
    other = senders.add("other.co.uk", spf=None, dmarc=None, dkim_key=True)
    senders.add("esp-example.net", spf="v=spf1 ip4:127.0.0.1 -all", dmarc=None)
    raw = sign(compose("Alice <alice@mail.example.co.uk>", message_id="<uk-2@mail.example.co.uk>"), other)
    server = inbound()

    reply = send(server, raw, mail_from="bounces@esp-example.net")

    assert reply.code == 550 and reply.text.startswith("5.7.1 "), reply.line  # co.uk is a public suffix
    assert "example.co.uk" in reply.text
    assert message_count(db) == 0


def test_organisational_domain_units():
    assert organisational_domain("mail.example.co.uk") == "example.co.uk"
    assert organisational_domain("a.b.Example.COM.") == "example.com"
    assert organisational_domain("example.co.uk") == "example.co.uk"
    assert organisational_domain("co.uk") == "co.uk"  # a public suffix is its own
    assert organisational_domain("localhost") == "localhost"
    assert organisational_domain("x.y.city.kawasaki.jp") == "city.kawasaki.jp"  # a PSL exception rule
    assert aligned("example.co.uk", "mail.example.co.uk")
    assert aligned("news.example.co.uk", "mail.example.co.uk")
    assert not aligned("other.co.uk", "mail.example.co.uk")
    assert not aligned("example.co.uk", "mail.example.co.uk", "s")
    assert aligned("Mail.Example.co.uk.", "mail.example.co.uk", "s")
    assert not aligned("", "example.com") and not aligned("example.com", "")
    assert not aligned("evil-example.com", "example.com")
