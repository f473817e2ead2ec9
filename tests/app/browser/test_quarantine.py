"""The inbound policy form and the quarantine in a real browser."""

from __future__ import annotations

from playwright.sync_api import expect

from mailferry.models import Domain, Message
from mailferry.models.message import QUEUED
from tests.app.web_fixtures import seed_quarantined


def test_set_the_policy_and_release_a_held_message(live_server, page, shot, db, owner, owner_domain):
    base = live_server
    page.goto(f"{base}/login")
    page.fill("#email", "owner@people.test")
    page.fill("#password", "owner-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    seed_quarantined(db, "held1", owner_domain)

    page.goto(f"{base}/domains/{owner_domain}")
    expect(page.locator("#spam-filter")).to_have_text("Spam filtering is off: RSPAMD_URL is not set")
    page.select_option("#dmarc_reject_policy", "rewrite")
    page.select_option("#spam_action", "forward")
    page.fill("#spam_threshold", "abc")
    page.click("text=Save policy")
    expect(page.locator("#spam_threshold-error")).to_be_visible()
    page.fill("#spam_threshold", "8")
    page.click("text=Save policy")
    expect(page.locator(".flash")).to_have_text("Inbound policy saved.")
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        assert (domain.dmarc_reject_policy, domain.spam_action, domain.spam_threshold) == ("rewrite", "forward", 8.0)
    shot("policy")

    page.click("#quarantine-link")
    expect(page.locator("tr.held[data-message=held1]")).to_contain_text("Cheap watches")
    page.locator("tr.held[data-message=held1] >> text=Release").click()
    expect(page.locator(".flash")).to_contain_text("released")
    expect(page.locator("tr.held")).to_have_count(0)
    with db.session() as s:
        assert s.get(Message, "held1").state == QUEUED
