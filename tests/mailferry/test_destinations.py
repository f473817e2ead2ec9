"""The private-destination guard: which addresses are public, ALLOW_PRIVATE_DESTINATIONS, and resolve() (for
webhooks) through the loopback DNS server."""

from __future__ import annotations

import pytest

from harness.settings import make_settings
from mailferry.destinations import NOT_AN_ADDRESS, DestinationGuard, DestinationRefused, classify
from mailferry.dns_lookup import DnsTemporaryError
from mailferry.resolver import make_resolver

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.0.0.1", "private"), ("172.16.0.1", "private"),
    ("172.31.255.254", "private"), ("192.168.1.1", "private"), ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("169.254.169.254", "cloud metadata"), ("169.254.1.1", "link-local"), ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"), ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("192.0.2.1", "reserved"), ("198.18.0.1", "reserved"),
    ("::1", "loopback"), ("::", "unspecified"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "cloud metadata"), ("fe80::1", "link-local"), ("fe80::1%lo", "link-local"),
    ("ff02::1", "multicast"), ("2001:db8::1", "reserved"), ("64:ff9b:1::a00:1", "private NAT64"),
    # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "loopback"), ("64:ff9b::10.0.0.1", "private"), ("2002:a00:1::1", "private"),
    ("2002:a9fe:a9fe::1", "cloud metadata"),
]
PUBLIC = ["8.8.8.8", "1.2.3.4", "93.184.215.14", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888",
          "2a00:1450:4001::1b", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address, kind", REFUSED)
def test_refused_addresses_say_what_they_are(address, kind):
    verdict = classify(address)
    assert not verdict.allowed
    assert verdict.reason.startswith(kind), verdict.reason
    assert not DestinationGuard().check(address).allowed


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert classify(address).allowed and classify(address).reason == ""


@pytest.mark.parametrize("name", ["mx.example.test", "", "10.0.0.1.nip.io", "0x7f000001", "[::1]"])
def test_anything_but_an_ip_literal_is_refused_even_when_private_is_allowed(name):
    assert classify(name).reason == NOT_AN_ADDRESS
    assert not DestinationGuard(allow_private=True).check(name).allowed


def test_allow_private_lets_private_addresses_through_and_keeps_the_reason():
    verdict = DestinationGuard(allow_private=True).check("10.0.0.1")
    assert verdict.allowed and verdict.reason.startswith("private")


def test_split_keeps_the_order_of_the_allowed_addresses():
    allowed, refused = DestinationGuard().split(["10.0.0.1", "8.8.8.8", "::1", "1.2.3.4"])
    assert allowed == ("8.8.8.8", "1.2.3.4")
    assert [v.address for v in refused] == ["10.0.0.1", "::1"]


@pytest.fixture
def resolver(dns_server):
    return make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1))


def test_resolve_refuses_a_host_with_only_private_addresses(dns_server, resolver):
    dns_server.set("hook.test", "A", "169.254.169.254")
    dns_server.set("hook.test", "AAAA", "::1")
    with pytest.raises(DestinationRefused) as refused:
        DestinationGuard().resolve("hook.test", resolver)
    assert str(refused.value) == "hook.test resolves only to private addresses (169.254.169.254, ::1)"
    assert [v.reason.split(" (")[0] for v in refused.value.verdicts] == ["cloud metadata", "loopback"]


def test_resolve_returns_only_the_public_addresses(dns_server, resolver):
    dns_server.set("hook.test", "A", "10.0.0.1", "1.2.3.4")
    dns_server.set("hook.test", "AAAA", "::1", "2001:4860:4860::8888")
    assert DestinationGuard().resolve("hook.test", resolver) == ("1.2.3.4", "2001:4860:4860::8888")
    everything = DestinationGuard(allow_private=True).resolve("hook.test", resolver)
    assert sorted(everything) == sorted(("10.0.0.1", "1.2.3.4", "::1", "2001:4860:4860::8888"))


def test_resolve_checks_an_ip_literal_without_dns(dns_server, resolver):
    with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254 resolves only to private addresses"):
        DestinationGuard().resolve("169.254.169.254", resolver)
    assert DestinationGuard().resolve("1.2.3.4", resolver) == ("1.2.3.4",)
    assert sum(dns_server.queries.values()) == 0


def test_resolve_a_name_without_address_or_dns_down(dns_server, resolver):
    with pytest.raises(DestinationRefused, match="nowhere.test has no address"):
        DestinationGuard().resolve("nowhere.test", resolver)
    dns_server.drop("slow.test")
    with pytest.raises(DnsTemporaryError):
        DestinationGuard().resolve("slow.test", resolver)
