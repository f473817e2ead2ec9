"""The domain page's Inbound policy form (POST /domains/<id>/options) and the spam filtering notice."""

from __future__ import annotations

import re

import pytest

from app.services.domains import add_domain
from mailferry.models import Domain
from tests.app.web_fixtures import Browser, make_web_app


def _page(browser, domain_id) -> str:
    return browser.get(f"/domains/{domain_id}").get_data(as_text=True)


def _selected(html: str, field: str) -> str:
    select = re.search(rf'<select[^>]*id="{field}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.search(r'<option selected value="([^"]*)"|<option value="([^"]*)" selected', select).group(0)


def test_each_select_offers_the_instance_default_first(owner_browser, owner_domain):
    html = _page(owner_browser, owner_domain)
    assert 'id="policy"' in html and "Inbound policy" in html
    for field, default, values in (("dmarc_reject_policy", "reject", ("reject", "rewrite", "quarantine")),
                                   ("dmarc_quarantine_policy", "quarantine", ("quarantine", "reject", "forward")),
                                   ("spam_action", "quarantine", ("forward", "quarantine", "reject"))):
        select = re.search(rf'<select[^>]*id="{field}"[^>]*>(.*?)</select>', html, re.S).group(1)
        options = re.findall(r'<option[^>]*value="([^"]*)"[^>]*>([^<]*)<', select)
        assert options[0] == ("", f"instance default ({default})")
        assert [value for value, _label in options[1:]] == list(values)
        assert 'value=""' in _selected(html, field)
    assert re.search(r'<input[^>]*id="spam_threshold"', html)
    assert 'id="rewrite_from_for_dmarc_reject"' not in html  # the old checkbox is gone


def test_save_the_policy_and_see_it_selected(owner_browser, owner_domain, db):
    response = owner_browser.post(f"/domains/{owner_domain}/options", {
        "dmarc_reject_policy": "rewrite", "dmarc_quarantine_policy": "forward", "spam_action": "reject",
        "spam_threshold": "6.5"}, csrf_page="/")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/domains/{owner_domain}#policy")
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        assert (domain.dmarc_reject_policy, domain.dmarc_quarantine_policy, domain.spam_action,
                domain.spam_threshold) == ("rewrite", "forward", "reject", 6.5)
        assert domain.rewrite_from_for_dmarc_reject  # the old option follows the policy
    html = _page(owner_browser, owner_domain)
    assert 'value="rewrite"' in _selected(html, "dmarc_reject_policy")
    assert 'value="reject"' in _selected(html, "spam_action")
    assert re.search(r'<input[^>]*id="spam_threshold"[^>]*value="6.5"', html)
    owner_browser.post(f"/domains/{owner_domain}/options", {"dmarc_reject_policy": "", "dmarc_quarantine_policy": "",
                                                            "spam_action": "", "spam_threshold": ""}, csrf_page="/")
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        assert (domain.dmarc_reject_policy, domain.spam_action, domain.spam_threshold) == (None, None, None)


@pytest.mark.parametrize("data,field", [
    ({"spam_threshold": "much"}, "spam_threshold"),
    ({"spam_threshold": "1001"}, "spam_threshold"),
    ({"spam_action": "delete"}, "spam_action"),
    ({"dmarc_reject_policy": "forward"}, "dmarc_reject_policy"),
])
def test_a_bad_field_gets_its_error_next_to_it(owner_browser, owner_domain, db, data, field):
    form = {"dmarc_reject_policy": "", "dmarc_quarantine_policy": "", "spam_action": "", "spam_threshold": "",
            **data}
    response = owner_browser.post(f"/domains/{owner_domain}/options", form, csrf_page="/")
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    with db.session() as s:
        assert s.get(Domain, owner_domain).spam_threshold is None


def test_spam_filtering_notice_on_every_domain_page(owner_browser, owner_domain, db, owner, web_settings):
    with db.session() as s:
        second = add_domain(s, "second.test", owner).id
    for domain_id in (owner_domain, second):
        assert "Spam filtering is off: RSPAMD_URL is not set" in _page(owner_browser, domain_id)


def test_spam_filtering_notice_when_rspamd_is_set(web_settings, owner, owner_domain):
    app = make_web_app(web_settings.replace(RSPAMD_URL="http://127.0.0.1:11333"))
    try:
        html = _page(Browser(app).login("owner@people.test", "owner-password"), owner_domain)
    finally:
        app.extensions["mailferry.db"].dispose()
    assert "Spam filtering: rspamd" in html and "Spam filtering is off" not in html


def test_another_owner_cannot_set_my_policy(other_browser, owner_domain, db):
    response = other_browser.post(f"/domains/{owner_domain}/options", {"spam_action": "forward"}, csrf_page="/")
    assert response.status_code == 404
    with db.session() as s:
        assert s.get(Domain, owner_domain).spam_action is None
