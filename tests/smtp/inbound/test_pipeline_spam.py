"""rspamd before the 250, end to end with the real rspamd: GTUBE refused, clean mail stored, rspamd down
deferred (or forwarded unscanned when failing open), and each domain's threshold and spam action.
Every test uses its own sender domain: rspamd caches SPF records for their TTL."""

from __future__ import annotations

import dkim
import pytest

from mailferry.models.message import QUARANTINED, QUEUED
from tests.smtp.inbound.conftest import compose, message_count, send, stored

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def sender(senders, domain: str) -> str:
    senders.add(domain, dmarc=None)
    return f"alice@{domain}"


def test_gtube_is_refused_at_data_and_nothing_is_stored(site, senders, rspamd, inbound, db):
    site.alias(site.domain())
    address = sender(senders, "gtube-example.com")
    server = inbound(RSPAMD_URL=rspamd.url)

    reply = send(server, compose(f"Alice <{address}>", body=f"Hello\r\n{GTUBE}\r\n"), mail_from=address)

    assert reply.code == 550 and reply.text.startswith("5.7.1 "), reply.line
    assert message_count(db) == 0


def test_a_clean_message_passes_and_is_stored_with_its_score(site, senders, rspamd, inbound, db):
    site.alias(site.domain())
    address = sender(senders, "clean-example.com")
    server = inbound(RSPAMD_URL=rspamd.url)

    reply = send(server, compose(f"Alice <{address}>"), mail_from=address)

    assert reply.code == 250, reply.line
    message = stored(db, reply.message_id)
    assert message.state == QUEUED and message.spam_score is not None
    assert b"X-Spam-" not in message.raw


@pytest.mark.parametrize("action", ["quarantine", "forward", "reject"])
def test_a_score_over_the_domains_threshold_gets_the_domains_spam_action(site, senders, rspamd, inbound, db, action):
    site.alias(site.domain(spam_threshold=-100, spam_action=action))
    address = sender(senders, f"flagged-{action}-example.com")
    raw = compose(f"Alice <{address}>", extra="X-Spam-Flag: NO\r\n")  # the sender's own claim is never kept
    server = inbound(RSPAMD_URL=rspamd.url)

    reply = send(server, raw, mail_from=address)

    if action == "reject":
        assert reply.code == 550 and reply.text.startswith("5.7.1 "), reply.line
        assert message_count(db) == 0
        return
    assert reply.code == 250, reply.line
    message = stored(db, reply.message_id)
    headers = [(k.lower(), v.strip()) for k, v in dkim.rfc822_parse(message.raw)[0]]
    if action == "quarantine":
        assert message.state == QUARANTINED
        assert "-100" in message.filter_reason
    else:
        assert message.state == QUEUED
        assert (b"x-spam-flag", b"YES") in headers and (b"x-spam-flag", b"NO") not in headers
        assert any(k == b"x-spam-score" for k, _ in headers)
        assert message.dsn_block == "flagged as spam"


def test_rspamd_down_defers_with_451_or_forwards_unscanned_when_failing_open(site, senders, rspamd, inbound, db):
    site.alias(site.domain())
    address = sender(senders, "down-example.com")
    closed = inbound(RSPAMD_URL=rspamd.url, RSPAMD_TIMEOUT="2s")
    open_ = inbound(RSPAMD_URL=rspamd.url, RSPAMD_TIMEOUT="2s", RSPAMD_FAIL_OPEN="true")
    rspamd.stop()  # the next test's `rspamd` fixture starts it again

    deferred = send(closed, compose(f"Alice <{address}>"), mail_from=address)
    assert deferred.code == 451 and deferred.text.startswith("4.7.1 "), deferred.line
    assert message_count(db) == 0

    accepted = send(open_, compose(f"Alice <{address}>"), mail_from=address)
    assert accepted.code == 250, accepted.line
    message = stored(db, accepted.message_id)
    assert message.state == QUEUED and message.spam_score is None
