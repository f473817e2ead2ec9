"""The DMARC policy the Authenticator reports: the From domain's own record, or its organisational domain's
`sp` (falling back to `p`) for a subdomain without one (RFC 7489 6.6.3), organisational domains by the PSL."""

from __future__ import annotations

import pytest

from harness.settings import make_settings
from mailferry.resolver import make_resolver
from smtp.inbound.authentication import Authenticator, parse_dmarc


def message(from_address: str) -> bytes:
    return f"From: {from_address}\r\nSubject: t\r\n\r\nbody\r\n".encode()


@pytest.fixture
def check(dns_server):
    authenticator = Authenticator(make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1)),
                                  "mx.mailferry.test")
    return lambda sender: authenticator.check(message(sender), mail_from=sender, peer_ip="127.0.0.9", helo="x")


def test_policies_from_dns(dns_server, check):
    dns_server.add("_dmarc.strict.com", "TXT", "v=DMARC1; p=reject; rua=mailto:d@strict.com")
    dns_server.add("_dmarc.example.co.uk", "TXT", "v=DMARC1; p=none; sp=quarantine")
    dns_server.add("_dmarc.nodmarc.com", "TXT", "v=spf1 -all")
    assert check("a@strict.com").dmarc_policy == "reject"
    assert check("a@mail.strict.com").dmarc_policy == "reject"  # no sp=: the subdomain takes p=
    assert check("a@example.co.uk").dmarc_policy == "none"
    assert check("a@mail.example.co.uk").dmarc_policy == "quarantine"  # the organisational domain's sp=
    assert check("a@nodmarc.com").dmarc_policy == "" and check("a@nodmarc.com").result("dmarc") == "none"
    assert dns_server.queries[("_dmarc.co.uk.", "TXT")] == 0  # a public suffix is never asked


def test_parse_dmarc():
    assert parse_dmarc("v=DMARC1; p=Reject; SP=none") == {"v": "dmarc1", "p": "reject", "sp": "none"}
    assert parse_dmarc("v=spf1 -all") is None
