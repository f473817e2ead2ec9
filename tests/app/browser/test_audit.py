"""The audit log in a real browser: reached from the nav, filtered by action, showing what the owner did."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.app.browser.test_dashboard import _sign_up


def test_the_owner_reads_their_audit_log(live_server, page, shot):
    base = live_server
    _sign_up(page, base, "audited@people.test")
    page.click("text=Log out")
    page.fill("#email", "audited@people.test")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("text=Wrong email or password.")).to_be_visible()
    page.fill("#email", "audited@people.test")
    page.fill("#password", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.click("nav >> text=Audit log")
    rows = page.locator("tr.audit-event")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("audited@people.test signed in")
    expect(rows.nth(1)).to_contain_text("failed login as audited@people.test")
    expect(rows.nth(2)).to_contain_text("account audited@people.test created")
    expect(rows.nth(2)).to_contain_text("signup")
    page.select_option("#action", "login_failed")
    page.click("button:has-text('Filter')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("anonymous")
    expect(rows.first).to_contain_text("127.0.0.1")
    shot("filtered")
