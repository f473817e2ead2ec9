"""The dashboard in a real browser: Playwright driving Debian's chromium against the app over loopback HTTP."""

from __future__ import annotations

import os

from playwright.sync_api import expect

from app.services.verification import expected_records
from mailferry.models import DeliveryAttempt, Domain, Message
from mailferry.models.message import DELIVERED, DONE
from tests.app.conftest import publish
from tests.app.web_fixtures import seed_message


def _sign_up(page, base: str, email: str = "newbie@people.test") -> None:
    page.goto(f"{base}/signup")
    page.fill("#email", email)
    page.fill("#password", "a-long-password")
    page.fill("#confirm", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    expect(page.locator(f"nav >> text={email}")).to_be_visible()


def _mark_delivered(db, message_id: str) -> None:
    """What the delivery worker writes when the destination MX takes the message."""
    with db.session() as s:
        message = s.get(Message, message_id)
        for d in message.deliveries:
            d.state, d.route, d.tls, d.attempts, d.last_code, d.last_reply = \
                DELIVERED, "mx:mx.gmail.test", True, 1, 250, "2.0.0 Ok: queued"
            s.add(DeliveryAttempt(delivery_id=d.id, route=d.route, code=250, reply=d.last_reply, tls=True,
                                  outcome=DELIVERED))
        message.state = DONE


def test_sign_up_add_domain_verify_alias_and_log(live_server, page, shot, db, dns_server, web_settings):
    base = live_server
    _sign_up(page, base)

    page.fill("#name", "browser.test")
    page.click("text=Add domain")
    page.wait_for_url(f"{base}/domains/*")
    expect(page.locator("text=Publish these DNS records")).to_be_visible()
    page.click("text=Create DKIM key")
    page.wait_for_selector("tr.dkim-key .badge")
    records = page.locator("tr.record")
    assert records.count() == 5  # ownership, MX, SPF, DKIM, DMARC
    assert page.locator("tr.record[data-check=mx] button.copy").first.is_visible()
    shot("records")

    copy = page.locator("tr.record[data-check=ownership] button.copy").nth(1)
    copy.click()
    expect(copy).to_have_text("Copied")
    with db.session() as s:
        token = s.query(Domain).filter_by(name="browser.test").one().verify_token
    assert page.evaluate("navigator.clipboard.readText()") == f"mailferry-verification={token}"

    # the owner publishes what the page told them to; then Verify
    with db.session() as s:
        publish(dns_server, expected_records(s.query(Domain).filter_by(name="browser.test").one(), web_settings))
    page.click("text=Verify now")
    page.wait_for_selector("tr.check")
    for check in ("ownership", "mx", "spf", "dkim", "dmarc"):
        assert page.locator(f"tr.check[data-check={check}] .pass").count() == 1, check
    expect(page.locator("h1 >> text=accepting mail")).to_be_visible()
    shot("verified")

    page.click("text=Aliases")
    page.fill("#address", "hello")
    page.fill("#destinations", "me@gmail.test\nbackup@fastmail.test")
    page.fill("#note", "from the browser")
    page.click("text=Create alias")
    row = page.locator('tr.alias[data-address="hello@browser.test"]')
    assert "backup@fastmail.test" in row.inner_text()
    shot("aliases")

    with db.session() as s:
        domain_id = s.query(Domain).filter_by(name="browser.test").one().id
    seed_message(db, "BROWSER000000001", domain_id, "hello@browser.test", ("me@gmail.test", "backup@fastmail.test"),
                 subject="Hi from outside")
    _mark_delivered(db, "BROWSER000000001")
    page.goto(f"{base}/domains/{domain_id}/messages")
    rows = page.locator('tr.message[data-message="BROWSER000000001"]')
    assert rows.count() == 2
    assert all("delivered" in rows.nth(i).inner_text() for i in range(2))
    shot("message-log")

    page.fill("#q", "nobody@else")
    page.click("button:has-text('Search')")
    page.wait_for_url("**q=nobody*")
    assert page.locator("tr.message").count() == 0
    page.fill("#q", "fastmail")
    page.click("button:has-text('Search')")
    page.wait_for_url("**q=fastmail")
    assert rows.count() == 2
    rows.first.locator("a").click()
    expect(page.locator("tr.delivery")).to_have_count(2)
    expect(page.locator("text=2.0.0 Ok: queued").first).to_be_visible()
    assert os.path.exists(shot("message"))


def test_field_errors_in_the_browser(live_server, page, shot):
    _sign_up(page, live_server, "errors@people.test")
    page.fill("#name", "not a domain")
    page.click("text=Add domain")
    expect(page.locator("#name-error")).to_be_visible()
    shot("domain-error")


def test_stats_chart_renders(live_server, page, shot, db):
    _sign_up(page, live_server, "stats@people.test")
    page.click("nav >> text=Stats")
    assert page.locator(".chart svg polyline").count() == 4
    shot("stats")


def test_password_change_and_log_in_again(live_server, page):
    base = live_server
    _sign_up(page, base, "pw@people.test")
    page.goto(f"{base}/account")
    page.fill("#pw-old_password", "a-long-password")
    page.fill("#pw-new_password", "another-long-one")
    page.fill("#pw-confirm", "another-long-one")
    page.click("button:has-text('Change password')")
    expect(page.locator("text=Password changed.")).to_be_visible()
    page.click("text=Log out")
    page.fill("#email", "pw@people.test")
    page.fill("#password", "another-long-one")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    expect(page.locator("nav >> text=pw@people.test")).to_be_visible()
