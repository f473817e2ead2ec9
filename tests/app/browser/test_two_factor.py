"""Two-factor authentication in Chromium: set up with the secret the page shows, then log in with a code."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import expect


def _log_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", "owner@people.test")
    page.fill("#password", "owner-password")
    page.click("button[type=submit]")


def test_set_up_two_factor_and_log_in_with_a_code(live_server, page, shot, owner):
    base = live_server
    _log_in(page, base)
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/account")
    page.click("#two-factor-setup")
    page.wait_for_url(f"{base}/account/2fa")
    expect(page.locator("#totp-qr svg")).to_be_visible()
    totp = pyotp.TOTP(page.locator("#totp-secret code").inner_text())
    shot("set-up")

    # The current step: if the clock crosses into the next one before the server checks, the code is still one
    # step away (the previous step's code would then be two away). The login below uses a later step.
    page.fill("#code", totp.now())
    page.click("text=Turn on")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    shot("recovery-codes")
    page.goto(f"{base}/account")
    expect(page.locator("#two-factor")).to_contain_text("10 of 10 recovery codes left")
    shot("account")

    page.click("nav >> text=Log out")
    page.wait_for_url(f"{base}/login")
    _log_in(page, base)
    page.wait_for_url(f"{base}/login/2fa")
    page.goto(f"{base}/account")
    page.wait_for_url(f"{base}/login?next=%2Faccount")  # half-way through the login is not logged in
    _log_in(page, base)
    page.wait_for_url(f"{base}/login/2fa")
    page.fill("#code", totp.at(time.time() + 30))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    expect(page.locator("nav >> text=owner@people.test")).to_be_visible()
    shot("logged-in")
