"""The SPF evaluator on its own, against the loopback DNS server."""

import pytest

from harness.settings import make_settings
from mailferry.resolver import make_resolver
from mailferry.spf import SpfEvaluator


@pytest.fixture
def spf(dns_server):
    return SpfEvaluator(make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1)))


def test_ipv6_networks_and_aaaa(spf, dns_server):
    dns_server.set("v6.test", "TXT", "v=spf1 ip6:2001:db8::/32 a:host.v6.test/24//64 -all")
    dns_server.set("host.v6.test", "AAAA", "2001:db9::1")
    dns_server.set("host.v6.test", "A", "127.0.0.9")
    assert spf.check_host("2001:db8::25", "v6.test").result == "pass"
    assert spf.check_host("2001:db9::ffff", "v6.test").result == "pass"  # /64 of the AAAA
    assert spf.check_host("127.0.0.200", "v6.test").result == "pass"  # /24 of the A
    assert spf.check_host("2001:dba::1", "v6.test").result == "fail"


def test_macros_expand(spf, dns_server):
    dns_server.set("macro.test", "TXT", "v=spf1 exists:%{ir}.%{v}.%{d2}._spf.macro.test -all")
    dns_server.set("25.0.0.127.in-addr.macro.test._spf.macro.test", "A", "127.0.0.2")
    assert spf.check_host("127.0.0.25", "macro.test").result == "pass"
    result = spf.check_host("127.0.0.26", "macro.test")
    assert result.result == "fail" and result.mechanism == "-all"


@pytest.mark.parametrize("record, text", [
    ("v=spf1 foo:bar -all", "unknown SPF mechanism 'foo'"),
    ("v=spf1 ip4:1.2.3.4/33 -all", "bad ip4 value"),
    ("v=spf1 ip4:2001:db8::1 -all", "is not an IPv4 network"),
    ("v=spf1 redirect=a.test redirect=b.test", "more than one redirect"),
    ("v=spf1 redirect=nothing.test", "nothing.test (redirect target) publishes no SPF record"),
    ("v=spf1 a:v1.test a:v2.test a:v3.test -all", "lookups found nothing"),
    ("v=spf1 exists:%{z}.test -all", "bad SPF macro"),
])
def test_broken_records_are_permerrors(spf, dns_server, record, text):
    dns_server.set("broken.test", "TXT", record)
    result = spf.check_host("127.0.0.25", "broken.test")
    assert result.result == "permerror" and text in result.why


def test_no_record_is_none_and_lookups_are_counted(spf, dns_server):
    assert spf.check_host("127.0.0.25", "empty.test").result == "none"
    dns_server.set("count.test", "TXT", "v=spf1 a mx include:inc.test ip4:127.0.0.25 -all")
    dns_server.set("count.test", "A", "127.0.0.1")
    dns_server.set("inc.test", "TXT", "v=spf1 -all")
    result = spf.check_host("127.0.0.25", "count.test")
    assert (result.result, result.mechanism, result.lookups) == ("pass", "ip4:127.0.0.25", 3)
