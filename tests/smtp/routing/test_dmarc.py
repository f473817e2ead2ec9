from mailferry.resolver import make_resolver
from smtp.routing.dmarc import DmarcPolicies
from tests.conftest import make_settings


def test_policies_from_dns(dns_server):
    dns_server.add("_dmarc.strict.test", "TXT", "v=DMARC1; p=reject; rua=mailto:d@strict.test")
    dns_server.add("_dmarc.org.test", "TXT", "v=DMARC1; p=none; sp=quarantine")
    dns_server.add("_dmarc.nodmarc.test", "TXT", "v=spf1 -all")
    policies = DmarcPolicies(make_resolver(make_settings(DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=1)))
    assert policies.policy("strict.test") == "reject"
    assert policies.policy("mail.org.test") == "quarantine"  # subdomain falls back to the org's sp=
    assert policies.policy("nodmarc.test") is None
    assert policies.policy("missing.test") is None
    asked = dns_server.queries[("_dmarc.strict.test.", "TXT")]
    assert asked == 1
    policies.policy("strict.test")
    assert dns_server.queries[("_dmarc.strict.test.", "TXT")] == asked  # cached
