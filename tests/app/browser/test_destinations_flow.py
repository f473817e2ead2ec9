"""Issue 12's "done means", in a real browser with the production default REQUIRE_VERIFIED_DESTINATIONS=true:
a new owner signs up, confirms the link that arrives at their mailbox, creates an alias and receives mail; an
alias pointing at a stranger's address delivers nothing until the stranger clicks.

All real and on loopback: chromium, the dashboard over HTTP, the DNS server, the inbound SMTP server,
`python worker.py` delivering the confirmation messages and the forwarded mail to aiosmtpd sinks.
"""

from __future__ import annotations

import os
import smtplib

from playwright.sync_api import expect

from app.services.verification import expected_records
from harness.net import wait_for
from harness.settings import make_settings
from mailferry.models import Domain
from tests.app.browser.conftest import ARTIFACTS
from tests.app.browser.test_end_to_end import confirm_in, env, internet, stack, web_port  # noqa: F401  (fixtures)
from tests.app.conftest import publish
from tests.app.destinations.helpers import link_in
from tests.smtp.delivery.conftest import ORIGINAL


def rcpt(address: tuple[str, int], recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        return client.rcpt(recipient)


def send(address: tuple[str, int], recipient: str) -> None:
    with smtplib.SMTP(*address, timeout=10) as client:
        assert client.sendmail("alice@sender.test", [recipient], ORIGINAL) == {}


def test_sign_up_confirm_forward_and_a_stranger_receives_nothing_until_they_click(
        stack, page, chromium, shot, db, internet, env):  # noqa: F811
    base, smtp_address, worker = stack
    internet.mx("people.test", (10, "mx.people.test", "127.0.0.2"))
    internet.mx("stranger.test", (10, "mx.stranger.test", "127.0.0.3"))
    mine, strangers = internet.sink("127.0.0.2"), internet.sink("127.0.0.3")

    page.goto(f"{base}/signup")
    page.fill("#email", "newowner@people.test")
    page.fill("#password", "a-long-password")
    page.fill("#confirm", "a-long-password")
    page.click("button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("We sent a confirmation link to newowner@people.test")
    wait_for(lambda: mine.messages, timeout=60, what=f"the sign-up confirmation; worker log:\n{worker.log()}")
    [signup] = mine.messages
    assert signup.rcpt_tos == ("newowner@people.test",) and b"X-Mailferry-Notice: signup" in signup.data
    page.click("nav >> text=Destinations")
    expect(page.locator('tr.destination[data-address="newowner@people.test"]')).to_have_attribute(
        "data-status", "pending")
    confirm_in(page, link_in(signup.data))
    shot("account-address-confirmed")

    page.goto(base)
    page.fill("#name", "ferry.test")
    page.click("text=Add domain")
    page.click("text=Create DKIM key")
    page.wait_for_selector("tr.dkim-key .badge")
    with db.session() as s:
        publish(internet.dns, expected_records(s.query(Domain).filter_by(name="ferry.test").one(),
                                               make_settings(**env)))
    page.click("text=Verify now")
    expect(page.locator("h1 >> text=accepting mail")).to_be_visible()
    page.click("text=Aliases")
    for local, destination in (("hello", "newowner@people.test"), ("friend", "pat@stranger.test")):
        page.fill("#address", local)
        page.fill("#destinations", destination)
        page.click("text=Create alias")
    expect(page.locator('tr.alias[data-address="friend@ferry.test"]')).to_contain_text("waiting for confirmation")
    expect(page.locator('tr.alias[data-address="hello@ferry.test"]')).not_to_contain_text("waiting")
    shot("aliases")

    send(smtp_address, "hello@ferry.test")
    wait_for(lambda: len(mine.messages) == 2, timeout=60, what=f"the forwarded message; worker log:\n{worker.log()}")
    assert mine.messages[1].rcpt_tos == ("newowner@people.test",) and b"X-Mailferry-Notice" not in mine.messages[1].data

    code, text = rcpt(smtp_address, "friend@ferry.test")
    assert (code, text[:5]) == (550, b"5.1.1") and b"stranger.test" not in text
    wait_for(lambda: strangers.messages, timeout=60, what="the stranger's confirmation")
    [asked] = strangers.messages
    assert b"X-Mailferry-Notice: confirmation" in asked.data and b"newowner@people.test" in asked.data

    stranger = chromium.new_context()  # the stranger has no account and no session
    try:
        stranger_page = stranger.new_page()
        confirm_in(stranger_page, link_in(asked.data))
        stranger_page.screenshot(path=os.path.join(ARTIFACTS, "destinations-flow-stranger-confirmed.png"), full_page=True)
    finally:
        stranger.close()
    send(smtp_address, "friend@ferry.test")
    wait_for(lambda: len(strangers.messages) == 2, timeout=60, what=f"delivery to the stranger; {worker.log()}")
    assert strangers.messages[1].rcpt_tos == ("pat@stranger.test",)
    page.click("nav >> text=Destinations")
    expect(page.locator('tr.destination[data-address="pat@stranger.test"]')).to_have_attribute(
        "data-status", "verified")
    shot("destinations")
