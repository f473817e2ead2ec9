"""DNS verification against the loopback DNS server: good records and each way they break."""

from __future__ import annotations

import pytest

from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from app.services.errors import ServiceError
from app.services.verification import expected_records, reverify_all, stored_report, verify_domain
from mailferry.models import Domain
from tests.app.conftest import HOSTNAME, SERVER_IP

NAME = "example.test"


def verify(db, settings, domain_id, **kwargs):
    with db.session() as s:
        domain = s.get(Domain, domain_id)
        return verify_domain(s, domain, settings, **kwargs)


def test_expected_records_name_every_record_to_publish(db, owner, app_settings):
    with db.session() as s:
        domain = add_domain(s, NAME, owner)
        first = generate_key(s, domain, app_settings.SECRET_KEY)
        pending = generate_key(s, domain, app_settings.SECRET_KEY, algorithm="ed25519")
        records = expected_records(domain, app_settings)
        token = domain.verify_token
    by_check = {}
    for r in records:
        by_check.setdefault(r.check, []).append(r)
    assert [(r.type, r.name, r.value) for r in by_check["ownership"]] == [
        ("TXT", f"_mailferry.{NAME}", f"mailferry-verification={token}")]
    assert [(r.type, r.name, r.value, r.priority) for r in by_check["mx"]] == [("MX", NAME, HOSTNAME, 10)]
    assert [(r.name, r.value) for r in by_check["spf"]] == [(NAME, f"v=spf1 ip4:{SERVER_IP} ~all")]
    assert [r.name for r in by_check["dkim"]] == [f"{first.selector}._domainkey.{NAME}",
                                                  f"{pending.selector}._domainkey.{NAME}"]
    assert by_check["dkim"][0].value == f"v=DKIM1; k=rsa; p={first.public_txt}"
    assert "not signing yet" in by_check["dkim"][1].note
    assert [(r.name, r.value) for r in by_check["dmarc"]] == [(f"_dmarc.{NAME}", "v=DMARC1; p=none")]


def test_spf_expected_uses_the_hostname_when_no_public_ips(db, owner, app_settings):
    with db.session() as s:
        domain = add_domain(s, NAME, owner)
        spf = [r for r in expected_records(domain, app_settings.replace(SMTP_PUBLIC_IPS="")) if r.check == "spf"]
    assert spf[0].value == f"v=spf1 a:{HOSTNAME} ~all"


def test_good_records_pass_and_verify_the_domain(db, app_settings, good_domain):
    report = verify(db, app_settings, good_domain)
    assert report.passed and report.verified and not report.forced
    assert {c.name: c.ok for c in report.checks} == dict.fromkeys(("ownership", "mx", "spf", "dkim", "dmarc"), True)
    assert report.server_ips == [SERVER_IP]
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        assert domain.verified and domain.verified_at is not None and domain.last_check_at is not None
        assert domain.check_results["spf"]["ok"] is True
        assert domain.broken_since == {}
        assert stored_report(domain).passed


def test_nothing_published_fails_every_check_with_a_reason(db, owner, app_settings):
    with db.session() as s:
        domain_id = add_domain(s, NAME, owner).id
    report = verify(db, app_settings, domain_id)
    assert not report.passed and not report.verified
    why = {c.name: c.why for c in report.checks}
    assert all(not c.ok and not c.temporary for c in report.checks)
    assert why["ownership"] == f"no TXT record at _mailferry.{NAME}"
    assert why["mx"] == f"{NAME} has no MX record"
    assert "no SPF" in why["spf"]
    assert "no DKIM key yet" in why["dkim"]
    assert why["dmarc"] == f"no DMARC record at _dmarc.{NAME}"


def test_wrong_token_and_mx_elsewhere_are_refused(db, app_settings, good_domain, dns_server):
    dns_server.set(f"_mailferry.{NAME}", "TXT", "mailferry-verification=someone-elses-token")
    dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")
    report = verify(db, app_settings, good_domain)
    assert not report.passed and not report.verified
    assert "do not contain this domain's token" in report.check("ownership").why
    assert report.check("mx").why == f"no MX record points to {HOSTNAME}"
    assert report.check("mx").found == ["10 mx.elsewhere.test"]


def test_mx_with_an_equal_rival_fails_but_a_backup_passes(db, app_settings, good_domain, dns_server):
    dns_server.add(NAME, "MX", "10 other.test.")
    rival = verify(db, app_settings, good_domain).check("mx")
    assert not rival.ok and "other.test is preferred over or equal" in rival.why
    dns_server.set(NAME, "MX", f"10 {HOSTNAME}.", "20 backup.test.")
    backup = verify(db, app_settings, good_domain).check("mx")
    assert backup.ok and "backup.test only as backup" in backup.why


def test_null_mx_fails(db, app_settings, good_domain, dns_server):
    dns_server.set(NAME, "MX", "0 .")
    assert "null MX" in verify(db, app_settings, good_domain).check("mx").why


def test_wrong_dkim_key_is_detected(db, app_settings, good_domain, dns_server):
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        old = [r for r in expected_records(domain, app_settings) if r.check == "dkim"][0]
        generate_key(s, domain, app_settings.SECRET_KEY, activate=True)  # rotated, DNS still has the old key
    dns_server.set(old.name, "TXT", old.value)
    report = verify(db, app_settings, good_domain)
    dkim = report.check("dkim")
    assert not dkim.ok and "no DKIM record at" in dkim.why  # the new selector is not published
    with db.session() as s:
        new = [r for r in expected_records(s.get(Domain, good_domain), app_settings) if r.check == "dkim"][0]
    dns_server.set(new.name, "TXT", old.value)  # published under the new name, but the old key
    dkim = verify(db, app_settings, good_domain).check("dkim")
    assert not dkim.ok and "is not the active key's" in dkim.why
    assert dkim.found == [old.value] and dkim.expected == new.value
    assert report.passed  # DKIM is not required for accepting mail


def test_dkim_algorithm_mismatch_and_revoked_key(db, app_settings, good_domain, dns_server):
    with db.session() as s:
        record = [r for r in expected_records(s.get(Domain, good_domain), app_settings) if r.check == "dkim"][0]
    dns_server.set(record.name, "TXT", record.value.replace("k=rsa", "k=ed25519"))
    assert "the active key is rsa" in verify(db, app_settings, good_domain).check("dkim").why
    dns_server.set(record.name, "TXT", "v=DKIM1; k=rsa; p=")
    assert "revoked" in verify(db, app_settings, good_domain).check("dkim").why


def test_spf_without_this_server_fails_with_advice(db, app_settings, good_domain, dns_server):
    dns_server.set(NAME, "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert not spf.ok and not spf.temporary
    assert f"this server ({SERVER_IP}) is not authorised" in spf.why
    assert "gets fail from '-all'" in spf.why and f"add 'ip4:{SERVER_IP}'" in spf.why
    assert spf.found == ["v=spf1 ip4:198.51.100.0/24 -all"]


def test_spf_is_evaluated_not_string_matched(db, app_settings, good_domain, dns_server):
    """The server's IP is covered by an include chain, a CIDR, the mx mechanism and a redirect: all pass."""
    dns_server.add(f"mx-host.{NAME}", "A", SERVER_IP)
    dns_server.set("spf.provider.test", "TXT", "v=spf1 include:_s2.provider.test -all")
    dns_server.set("_s2.provider.test", "TXT", "v=spf1 ip4:127.0.0.0/24 -all")
    dns_server.set("redirected.test", "TXT", f"v=spf1 a:mx-host.{NAME} -all")
    dns_server.set("othermx.test", "MX", f"10 mx-host.{NAME}.")
    for record in ("v=spf1 include:spf.provider.test -all", "v=spf1 ip4:127.0.0.0/8 ~all",
                   "v=spf1 mx:othermx.test -all", "v=spf1 redirect=redirected.test",
                   "v=spf1 exists:%{i}.allow.test -all"):
        dns_server.set(NAME, "TXT", record, "google-site-verification=unrelated")
        dns_server.set(f"{SERVER_IP}.allow.test", "A", "127.0.0.2")
        spf = verify(db, app_settings, good_domain).check("spf")
        assert spf.ok, (record, spf.why)
        assert spf.found == [record]
    dns_server.set(NAME, "TXT", "v=spf1 include:spf.provider.test ?all")
    dns_server.set("_s2.provider.test", "TXT", "v=spf1 ip4:127.0.1.0/24 -all")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert not spf.ok and "neutral" in spf.why


def test_two_spf_records_are_flagged(db, app_settings, good_domain, dns_server):
    dns_server.set(NAME, "TXT", f"v=spf1 ip4:{SERVER_IP} -all", "v=spf1 include:mail.provider.test -all")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert not spf.ok and spf.why.startswith("2 SPF records") and len(spf.found) == 2


def test_too_deep_spf_is_flagged(db, app_settings, good_domain, dns_server):
    for i in range(12):
        dns_server.set(f"l{i}.deep.test", "TXT", f"v=spf1 include:l{i + 1}.deep.test -all")
    dns_server.set("l12.deep.test", "TXT", f"v=spf1 ip4:{SERVER_IP} -all")
    dns_server.set(NAME, "TXT", "v=spf1 include:l0.deep.test -all")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert not spf.ok and "permerror" in spf.why and "more than 10 DNS lookups" in spf.why


def test_include_of_a_domain_without_spf_is_a_permerror(db, app_settings, good_domain, dns_server):
    dns_server.set(NAME, "TXT", "v=spf1 include:nospf.test -all")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert not spf.ok and "nospf.test (include target) publishes no SPF record" in spf.why


def test_server_address_comes_from_the_hostname_when_not_configured(db, app_settings, good_domain, dns_server):
    settings = app_settings.replace(SMTP_PUBLIC_IPS="")
    dns_server.set(NAME, "TXT", f"v=spf1 a:{HOSTNAME} -all")
    spf = verify(db, settings, good_domain).check("spf")
    assert not spf.ok and "cannot tell this server's address" in spf.why
    dns_server.set(HOSTNAME, "A", "127.0.0.26")
    report = verify(db, settings, good_domain)
    assert report.check("spf").ok and report.server_ips == ["127.0.0.26"]


def test_missing_and_duplicate_dmarc(db, app_settings, good_domain, dns_server):
    dns_server.remove(f"_dmarc.{NAME}")
    report = verify(db, app_settings, good_domain)
    assert not report.check("dmarc").ok and report.passed
    dns_server.set(f"_dmarc.{NAME}", "TXT", "v=DMARC1; p=reject", "v=DMARC1; p=none")
    assert "2 DMARC records" in verify(db, app_settings, good_domain).check("dmarc").why
    dns_server.set(f"_dmarc.{NAME}", "TXT", "v=DMARC1; rua=mailto:x@example.test")
    assert "no valid p= policy" in verify(db, app_settings, good_domain).check("dmarc").why
    dns_server.set(f"_dmarc.{NAME}", "TXT", "v=DMARC1; p=quarantine")
    assert verify(db, app_settings, good_domain).check("dmarc").why == "DMARC policy p=quarantine"


def test_dns_timeout_is_a_clear_temporary_failure(db, owner, app_settings, dns_server):
    with db.session() as s:
        domain_id = add_domain(s, NAME, owner).id
    dns_server.drop(NAME)
    dns_server.drop(f"_mailferry.{NAME}")
    report = verify(db, app_settings, domain_id)
    assert not report.passed and not report.verified
    for name in ("ownership", "mx", "spf"):
        check = report.check(name)
        assert check.temporary and not check.ok
        assert "timed out after 1s" in check.why and "try again later" in check.why
    assert not report.check("dmarc").temporary  # NXDOMAIN is an answer


def test_spf_include_timeout_is_temporary(db, app_settings, good_domain, dns_server):
    dns_server.set(NAME, "TXT", "v=spf1 include:slow.test -all")
    dns_server.drop("slow.test")
    spf = verify(db, app_settings, good_domain).check("spf")
    assert spf.temporary and "slow.test" in spf.why


def test_verified_stays_and_broken_since_records_what_broke(db, app_settings, good_domain, dns_server):
    assert verify(db, app_settings, good_domain).passed
    dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")
    dns_server.remove(f"_dmarc.{NAME}")
    summary = reverify_all(db, app_settings)
    assert summary["checked"] == 1 and summary["passed"] == 0
    assert summary["newly_broken"] == {NAME: ["dmarc", "mx"]}
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        assert domain.verified  # a record breaking does not bounce mail on its own
        first = dict(domain.broken_since)
        assert set(first) == {"mx", "dmarc"}
    assert reverify_all(db, app_settings)["newly_broken"] == {}  # still broken: the date stays
    dns_server.drop(f"_dmarc.{NAME}")  # a timeout neither breaks nor repairs
    dns_server.set(NAME, "MX", f"10 {HOSTNAME}.")
    reverify_all(db, app_settings)
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        assert domain.broken_since == {"dmarc": first["dmarc"]}
        assert domain.check_results["dmarc"]["temporary"]
        assert domain.check_results["dmarc"]["last_known"]["ok"] is False


def test_reverify_all_checks_every_domain(db, owner, app_settings, good_domain):
    with db.session() as s:
        add_domain(s, "second.test", owner)
    summary = reverify_all(db, app_settings)
    assert summary == {"checked": 2, "passed": 1, "errors": [], "newly_broken": {}, "notices": 0}


def test_force_is_for_admins_only(db, owner, admin, app_settings):
    with db.session() as s:
        domain = add_domain(s, NAME, owner)
        with pytest.raises(ServiceError) as err:
            verify_domain(s, domain, app_settings, force=True, actor=owner)
        assert err.value.code == "forbidden"
        report = verify_domain(s, domain, app_settings, force=True, actor=admin)
        assert report.verified and report.forced and not report.passed
        assert domain.force_verified and domain.verified


def test_subdomain_inherits_the_parent_dmarc_policy(db, owner, app_settings, dns_server):
    with db.session() as s:
        domain_id = add_domain(s, "mail.sub.example.test", owner).id
    dns_server.set("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    dmarc = verify(db, app_settings, domain_id).check("dmarc")
    assert dmarc.ok and dmarc.why == "inherited from _dmarc.example.test: policy quarantine"


def test_zone_lines_split_long_txt_values(db, owner, app_settings):
    with db.session() as s:
        domain = add_domain(s, NAME, owner)
        generate_key(s, domain, app_settings.SECRET_KEY)
        lines = {r.check: r.zone_line for r in expected_records(domain, app_settings)}
    assert lines["mx"] == f"{NAME}. 3600 IN MX 10 {HOSTNAME}."
    assert lines["dmarc"] == f'_dmarc.{NAME}. 3600 IN TXT "v=DMARC1; p=none"'
    chunks = lines["dkim"].split(" IN TXT ")[1].split('" "')
    assert len(chunks) == 2 and len(chunks[0].strip('"')) == 255


def test_a_timeout_between_pass_and_fail_still_records_the_break(db, app_settings, good_domain, dns_server):
    assert verify(db, app_settings, good_domain).check("dmarc").ok
    dns_server.drop(f"_dmarc.{NAME}")
    assert verify(db, app_settings, good_domain).check("dmarc").temporary
    assert verify(db, app_settings, good_domain).check("dmarc").temporary  # last_known survives two timeouts
    dns_server.clear()
    verify(db, app_settings, good_domain)
    with db.session() as s:
        assert set(s.get(Domain, good_domain).broken_since) == {"ownership", "mx", "spf", "dkim", "dmarc"}
