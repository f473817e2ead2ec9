"""The "a DNS record broke" notice: once per break (a record that recovers and breaks again is a new break),
never for a DNS timeout, naming the record, what was expected and found, with the domain page's link."""

from __future__ import annotations

from app.services.notification_prefs import set_preferences
from app.services.verification import reverify_all, verify_domain
from mailferry.models import Domain
from mailferry.models.notification import DNS_BROKEN
from tests.app.conftest import HOSTNAME
from tests.app.services.notices import dispatched, notices

NAME = "example.test"


def broken_since(db, domain_id: int) -> dict:
    with db.session() as s:
        return dict(s.get(Domain, domain_id).broken_since or {})


def test_a_broken_record_is_announced_once_per_break(db, app_settings, good_domain, dns_server, owner, redis_conn):
    assert reverify_all(db, app_settings)["notices"] == 0  # everything passes
    dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")
    assert reverify_all(db, app_settings)["notices"] == 1
    assert reverify_all(db, app_settings)["notices"] == 0  # still broken: the same break
    [first] = notices(db, DNS_BROKEN)
    since = broken_since(db, good_domain)["mx"]
    assert first.key == f"domain:{good_domain}:mx:{since}" and first.to == owner.email
    assert first.mime["Subject"] == f"{NAME}: the MX record stopped working"
    assert first.mime["X-Mailferry-Notice"] == DNS_BROKEN
    assert dispatched(redis_conn, first)
    text = first.text
    assert f"Record:   MX {NAME}" in text
    assert f"Expected: 10 {HOSTNAME}" in text and "Found:    10 mx.elsewhere.test" in text
    assert f"no MX record points to {HOSTNAME}" in text
    assert f"{app_settings.public_url}/domains/{good_domain}" in text
    assert f'href="{app_settings.public_url}/domains/{good_domain}"' in first.html

    dns_server.set(NAME, "MX", f"10 {HOSTNAME}.")  # fixed: nothing to say
    assert reverify_all(db, app_settings)["notices"] == 0 and broken_since(db, good_domain) == {}
    dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")  # broken again: a new break, a new notice
    assert reverify_all(db, app_settings)["notices"] == 1
    assert [n.key.split(":")[2] for n in notices(db, DNS_BROKEN)] == ["mx", "mx"]
    assert len({n.key for n in notices(db, DNS_BROKEN)}) == 2


def test_a_dns_timeout_is_not_a_break(db, app_settings, good_domain, dns_server):
    assert reverify_all(db, app_settings)["notices"] == 0
    dns_server.drop(NAME)  # MX and SPF lookups time out
    dns_server.drop(f"_mailferry.{NAME}")
    summary = reverify_all(db, app_settings)
    assert summary["notices"] == 0 and summary["passed"] == 0
    assert notices(db, DNS_BROKEN) == [] and broken_since(db, good_domain) == {}


def test_a_timeout_then_a_failure_is_announced_with_what_was_found(db, app_settings, good_domain, dns_server):
    assert reverify_all(db, app_settings)["notices"] == 0
    dns_server.drop(f"_dmarc.{NAME}")
    assert reverify_all(db, app_settings)["notices"] == 0
    dns_server.undrop(f"_dmarc.{NAME}")
    dns_server.set(f"_dmarc.{NAME}", "TXT", "v=DMARC1; rua=mailto:x@example.test")
    assert reverify_all(db, app_settings)["notices"] == 1
    [notice] = notices(db, DNS_BROKEN)
    assert f"Record:   TXT _dmarc.{NAME}" in notice.text and "rua=mailto:x@example.test" in notice.text


def test_a_break_announced_during_a_timeout_says_what_was_last_found(db, app_settings, good_domain, dns_server):
    with db.session() as s:
        verify_domain(s, s.get(Domain, good_domain), app_settings)
        dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")
        verify_domain(s, s.get(Domain, good_domain), app_settings)  # the break, seen on the dashboard
    dns_server.drop(NAME)  # the daily run only gets timeouts
    assert reverify_all(db, app_settings)["notices"] == 1
    [notice] = notices(db, DNS_BROKEN)
    assert "Found:    10 mx.elsewhere.test" in notice.text and f"no MX record points to {HOSTNAME}" in notice.text


def test_a_break_found_by_a_dashboard_check_is_announced_by_the_next_daily_run(db, app_settings, good_domain,
                                                                              dns_server):
    with db.session() as s:
        verify_domain(s, s.get(Domain, good_domain), app_settings)
    dns_server.remove(f"_dmarc.{NAME}")
    with db.session() as s:
        verify_domain(s, s.get(Domain, good_domain), app_settings)  # records the break, tells nobody yet
    since = broken_since(db, good_domain)["dmarc"]
    assert notices(db, DNS_BROKEN) == []
    assert reverify_all(db, app_settings)["notices"] == 1
    assert [n.key for n in notices(db, DNS_BROKEN)] == [f"domain:{good_domain}:dmarc:{since}"]


def test_an_owner_who_turned_it_off_gets_nothing(db, app_settings, good_domain, dns_server, owner):
    with db.session() as s:
        set_preferences(s, owner.id, owner, {DNS_BROKEN: False})
    assert reverify_all(db, app_settings)["notices"] == 0
    dns_server.set(NAME, "MX", "10 mx.elsewhere.test.")
    summary = reverify_all(db, app_settings)
    assert summary["newly_broken"] == {NAME: ["mx"]} and summary["notices"] == 0
    assert notices(db, DNS_BROKEN) == []
