import re

import pytest

from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from mailferry.models import Alias, DkimKey, Domain, User
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import seed_message, seed_quarantined


def _domain_id(response) -> int:
    return int(re.search(r"/domains/(\d+)", response.headers["Location"]).group(1))


def test_add_a_domain_and_see_the_records_to_publish(owner_browser, db):
    response = owner_browser.post("/domains", {"name": "Shop.Example.TEST"}, csrf_page="/")
    assert response.status_code == 302
    domain_id = _domain_id(response)
    html = owner_browser.get(f"/domains/{domain_id}").get_data(as_text=True)
    with db.session() as s:
        token = s.get(Domain, domain_id).verify_token
    for value in ("_mailferry.shop.example.test", f"mailferry-verification={token}", HOSTNAME,
                  f"v=spf1 ip4:{SERVER_IP} ~all", "_dmarc.shop.example.test", "v=DMARC1; p=none"):
        assert f'data-copy="{value}"' in html, value  # each value has a copy button
    assert "not verified" in html and "Not checked yet" in html
    assert "shop.example.test" in owner_browser.get("/").get_data(as_text=True)


@pytest.mark.parametrize("name, message", [("not a domain", ""), ("localhost", ""), ("", "required"),
                                           ("x\n.example", "control characters"), ("x.ex\rample", "control characters"),
                                           ("x\x00.example", "control characters")])
def test_add_domain_errors_are_shown_next_to_the_field(owner_browser, name, message):
    response = owner_browser.post("/domains", {"name": name}, csrf_page="/")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="name-error"' in html
    assert message in html.split('id="name-error"')[1][:200].lower()


def test_a_pending_claim_does_not_block_another_account_but_a_verified_one_does(owner_browser, other_owner, db):
    with db.session() as s:
        add_domain(s, "claimed.test", other_owner)
        verified = add_domain(s, "taken.test", other_owner)
        verified.verified = True
    assert owner_browser.post("/domains", {"name": "claimed.test"}, csrf_page="/").status_code == 302
    again = owner_browser.post("/domains", {"name": "claimed.test"}, csrf_page="/")
    assert again.status_code == 400 and "claimed.test is already in your domains" in again.get_data(as_text=True)
    refused = owner_browser.post("/domains", {"name": "taken.test"}, csrf_page="/")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "taken.test is already in use on this server" in html
    assert "other@people.test" not in html  # whose it is stays private


def test_verify_with_every_record_published_passes(owner_browser, good_domain, db):
    response = owner_browser.post(f"/domains/{good_domain}/verify", csrf_page="/")
    assert response.status_code == 302
    html = owner_browser.get(f"/domains/{good_domain}").get_data(as_text=True)
    rows = re.findall(r'<tr class="check" data-check="(\w+)">(.*?)</tr>', html, re.S)
    assert [name for name, _ in rows] == ["ownership", "mx", "spf", "dkim", "dmarc"]
    assert all('class="pass"' in row for _, row in rows), rows
    assert "accepting mail" in html
    with db.session() as s:
        assert s.get(Domain, good_domain).verified


def test_verify_shows_found_expected_and_why_for_broken_records(owner_browser, good_domain, dns_server, db):
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        dns_server.set(domain.name, "TXT", "v=spf1 ip4:192.0.2.1 -all")  # SPF without this server
        dns_server.remove(f"_dmarc.{domain.name}")
    owner_browser.post(f"/domains/{good_domain}/verify", csrf_page="/")
    html = owner_browser.get(f"/domains/{good_domain}").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="check" data-check="(\w+)">(.*?)</tr>', html, re.S))
    assert 'class="pass"' in rows["ownership"] and 'class="pass"' in rows["mx"]
    assert 'class="fail"' in rows["spf"] and "v=spf1 ip4:192.0.2.1 -all" in rows["spf"]
    assert 'class="fail"' in rows["dmarc"] and "nothing" in rows["dmarc"]
    assert "v=DMARC1; p=none" in rows["dmarc"]  # the expected value


def test_verify_without_records_fails_and_keeps_the_domain_closed(owner_browser, owner_domain, db):
    owner_browser.post(f"/domains/{owner_domain}/verify", csrf_page="/")
    html = owner_browser.get(f"/domains/{owner_domain}").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="check" data-check="(\w+)">(.*?)</tr>', html, re.S))
    assert all('class="fail"' in row for row in rows.values())
    with db.session() as s:
        assert not s.get(Domain, owner_domain).verified


def test_only_an_admin_can_force_verification(owner_browser, admin_browser, owner_domain, db):
    owner_browser.post(f"/domains/{owner_domain}/verify", {"force": "y"}, csrf_page="/")
    with db.session() as s:
        assert not s.get(Domain, owner_domain).verified
    admin_browser.post(f"/domains/{owner_domain}/verify", {"force": "y"}, csrf_page="/")
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        assert domain.verified and domain.force_verified
    assert "forced by an admin" in owner_browser.get("/").get_data(as_text=True)  # marked in the list


def test_dkim_generate_rotate_and_switch_never_show_the_private_key(owner_browser, owner_domain, db):
    owner_browser.post(f"/domains/{owner_domain}/dkim", {"algorithm": "rsa"}, csrf_page="/")
    owner_browser.post(f"/domains/{owner_domain}/dkim", {"algorithm": "ed25519"}, csrf_page="/")
    html = owner_browser.get(f"/domains/{owner_domain}").get_data(as_text=True)
    with db.session() as s:
        keys = sorted(s.query(DkimKey).filter_by(domain_id=owner_domain), key=lambda k: k.id)
        first, second = keys
        assert first.active and not second.active and second.algorithm == "ed25519"
        for key in keys:
            assert f'data-copy="{key.selector}._domainkey.owned.test"' in html
            assert key.public_txt in html
    assert "PRIVATE KEY" not in html and "Switch to this key" in html
    owner_browser.post(f"/domains/{owner_domain}/dkim/{second.id}/activate", csrf_page="/")
    with db.session() as s:
        assert s.get(DkimKey, second.id).active and not s.get(DkimKey, first.id).active


def test_another_owner_gets_404_for_my_domain_and_keys(other_browser, owner_domain, db, app_settings):
    with db.session() as s:
        key = generate_key(s, s.get(Domain, owner_domain), app_settings.SECRET_KEY)
    assert other_browser.get(f"/domains/{owner_domain}").status_code == 404
    for url in (f"/domains/{owner_domain}/verify", f"/domains/{owner_domain}/dkim",
                f"/domains/{owner_domain}/dkim/{key.id}/activate", f"/domains/{owner_domain}/options",
                f"/domains/{owner_domain}/delete"):
        assert other_browser.post(url, {"algorithm": "rsa"}, csrf_page="/").status_code == 404, url
    assert "owned.test" not in other_browser.get("/").get_data(as_text=True)
    with db.session() as s:
        assert s.get(Domain, owner_domain) is not None
        assert len(s.get(Domain, owner_domain).dkim_keys) == 1
        assert not s.get(Domain, owner_domain).rewrite_from_for_dmarc_reject


def test_a_key_id_of_another_domain_is_404_even_for_my_domain(owner_browser, owner_domain, other_owner, db, app_settings):
    with db.session() as s:
        foreign = add_domain(s, "foreign.test", other_owner)
        key = generate_key(s, foreign, app_settings.SECRET_KEY)
    assert owner_browser.post(f"/domains/{owner_domain}/dkim/{key.id}/activate", csrf_page="/").status_code == 404


def test_admin_sees_every_domain(admin_browser, owner_domain):
    assert "owned.test" in admin_browser.get("/").get_data(as_text=True)
    assert admin_browser.get(f"/domains/{owner_domain}").status_code == 200


def test_delete_domain_asks_first_and_says_what_goes(owner_browser, owner_domain, owner, db):
    with db.session() as s:
        add_alias(s, "hello@owned.test", ["me@dest.test"], s.get(User, owner.id))
        add_alias(s, "*@owned.test", ["me@dest.test"], s.get(User, owner.id))
    seed_message(db, "DELQUEUED1", owner_domain, "hello@owned.test", ("me@dest.test",))
    seed_quarantined(db, "DELHELD1", owner_domain)
    page = owner_browser.get(f"/domains/{owner_domain}").get_data(as_text=True)
    assert f'href="/domains/{owner_domain}/delete"' in page and f'action="/domains/{owner_domain}/delete"' not in page
    confirm = owner_browser.get(f"/domains/{owner_domain}/delete").get_data(as_text=True)
    items = dict(re.findall(r'<li data-what="(\w+)"[^>]*>\s*(\d+)', confirm))
    assert items == {"aliases": "2", "dkim_keys": "0", "logged": "2", "queued": "1", "quarantined": "1"}, items

    for typed in ({}, {"confirm_name": "other.test"}):
        refused = owner_browser.post(f"/domains/{owner_domain}/delete", typed, csrf_page=f"/domains/{owner_domain}/delete")
        assert refused.status_code == 400 and "type owned.test to delete it" in refused.get_data(as_text=True)
    with db.session() as s:
        assert s.get(Domain, owner_domain) is not None
    done = owner_browser.post(f"/domains/{owner_domain}/delete", {"confirm_name": " Owned.TEST "},
                              csrf_page=f"/domains/{owner_domain}/delete")
    assert done.status_code == 302
    with db.session() as s:
        assert s.get(Domain, owner_domain) is None


def test_delete_alias_asks_first(owner_browser, owner_domain, owner, db):
    with db.session() as s:
        alias_id = add_alias(s, "hello@owned.test", ["me@dest.test", "you@dest.test"], s.get(User, owner.id)).id
    listing = owner_browser.get(f"/domains/{owner_domain}/aliases").get_data(as_text=True)
    assert f'href="/aliases/{alias_id}/delete"' in listing and f'action="/aliases/{alias_id}/delete"' not in listing
    confirm = owner_browser.get(f"/aliases/{alias_id}/delete").get_data(as_text=True)
    assert "Delete hello@owned.test?" in confirm and "me@dest.test, you@dest.test" in confirm
    assert owner_browser.post(f"/aliases/{alias_id}/delete", csrf_page=f"/aliases/{alias_id}/delete").status_code == 302
    with db.session() as s:
        assert s.get(Alias, alias_id) is None


@pytest.mark.parametrize("check, breaks", [
    ("spf", lambda dns, name: dns.set(name, "TXT", f"v=spf1 ip4:{SERVER_IP} -all", "v=spf1 a -all")),
    ("spf", lambda dns, name: dns.set(name, "TXT", "v=spf1 ip4:198.51.100.7 -all")),
    ("dmarc", lambda dns, name: dns.remove(f"_dmarc.{name}")),
    ("mx", lambda dns, name: dns.set(name, "MX", "10 mx.elsewhere.test.")),
    ("ownership", lambda dns, name: dns.remove(f"_mailferry.{name}")),
])
def test_each_broken_record_fails_alone_with_a_reason(owner_browser, good_domain, dns_server, db, check, breaks):
    with db.session() as s:
        breaks(dns_server, s.get(Domain, good_domain).name)
    owner_browser.post(f"/domains/{good_domain}/verify", csrf_page="/")
    html = owner_browser.get(f"/domains/{good_domain}").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="check" data-check="(\w+)">(.*?)</tr>', html, re.S))
    failing = {name for name, row in rows.items() if 'class="fail"' in row}
    assert failing == {check}
    why = re.findall(r"<td>(.*?)</td>", rows[check], re.S)[-1].strip()
    assert len(why) > 10, why


def test_wrong_dkim_key_fails(owner_browser, good_domain, dns_server, db):
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        key = domain.dkim_keys[0]
        dns_server.set(f"{key.selector}._domainkey.{domain.name}", "TXT",
                       "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrongkey")
    owner_browser.post(f"/domains/{good_domain}/verify", csrf_page="/")
    html = owner_browser.get(f"/domains/{good_domain}").get_data(as_text=True)
    row = dict(re.findall(r'<tr class="check" data-check="(\w+)">(.*?)</tr>', html, re.S))["dkim"]
    assert 'class="fail"' in row and "wrongkey" in row


def test_admin_adds_a_domain_for_an_owner_and_owners_cannot(admin_browser, owner_browser, other_owner, db):
    response = admin_browser.post("/domains", {"name": "for-other.test", "owner": "other@people.test"}, csrf_page="/")
    assert response.status_code == 302
    response = owner_browser.post("/domains", {"name": "sneaky.test", "owner": "other@people.test"}, csrf_page="/")
    assert response.status_code == 302  # the field is ignored for owners: the domain is theirs
    with db.session() as s:
        assert s.query(Domain).filter_by(name="for-other.test").one().owner.email == "other@people.test"
        assert s.query(Domain).filter_by(name="sneaky.test").one().owner.email == "owner@people.test"
    response = admin_browser.post("/domains", {"name": "x.test", "owner": "nobody@people.test"}, csrf_page="/")
    assert response.status_code == 400 and 'id="owner-error"' in response.get_data(as_text=True)


def test_copy_buttons_name_what_they_copy(owner_browser, owner_domain):
    html = owner_browser.get(f"/domains/{owner_domain}").get_data(as_text=True)
    buttons = re.findall(r'<button type="button" class="copy" data-copy="([^"]*)"\s+aria-label="([^"]+)"', html)
    assert len(buttons) >= 4 and all(label.startswith("Copy ") for _, label in buttons)
    assert "Copy _mailferry.owned.test" in {label for _, label in buttons}


def test_get_domains_is_the_domains_page_and_links_stay_on_the_root(owner_browser, owner_domain, browser):
    page = owner_browser.get("/domains")
    assert page.status_code == 200 and "owned.test" in page.get_data(as_text=True)
    assert 'href="/"' in page.get_data(as_text=True)  # url_for('domains.index') is still /
    assert browser.get("/domains").status_code == 302  # signed out: to the login, like /
