"""Every dashboard page at 1280 and 390 px wide in Chromium, with long values in it: nothing scrolls the page
sideways, no table cell is squeezed to a sliver, the header's brand and links do not run into each other.
Screenshots: tests/artifacts/test_every_page_fits_<width>-<page>-<width>.png.

A page the app serves that this test does not visit fails it (ROUTES below), so a new page gets checked too."""

from __future__ import annotations

import secrets
import time

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import expect

from app.services import two_factor
from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from app.services.password_reset import make_link
from app.services.users import create_user
from mailferry.links import CONFIRM_DESTINATION, DestinationLink, make_token
from mailferry.models import Delivery, Domain, Mailbox, Message, User
from mailferry.models.message import BOUNCED, DONE
from tests.app.web_fixtures import make_web_app, seed_message, seed_quarantined

WIDTHS = (1280, 390)
MIN_CELL = 40  # px: narrower than this a cell shows a character or two per line
LONG_DOMAIN = "customer-support.a-rather-long-company-name.example"
LONG_LOCAL = "quarterly-invoices-and-receipts"
LONG_DESTINATIONS = ["finance.department.team.inbox@a-long-destination-provider.example",
                     "second.person.with.a.long.address@another-mail-provider.example"]
NOT_PAGES = {"static", "health.healthz", "health.readyz", "metrics.metrics"}  # JSON, files or exposition text


def _owner_pages(w: dict) -> dict[str, str]:
    return {
        "domains.index": "/",
        "domains.show": f"/domains/{w['domain_id']}",
        "aliases.index": f"/domains/{w['domain_id']}/aliases",
        "aliases.edit": f"/aliases/{w['alias_id']}/edit",
        "aliases.confirm_delete": f"/aliases/{w['alias_id']}/delete",
        "domains.confirm_delete": f"/domains/{w['domain_id']}/delete",
        "messages.index": f"/domains/{w['domain_id']}/messages",
        "messages.show": f"/messages/{w['message_id']}",
        "quarantine.index": f"/domains/{w['domain_id']}/quarantine",
        "stats.domain": f"/domains/{w['domain_id']}/stats",
        "stats.overview": "/stats",
        "destinations.index": "/destinations",
        "audit.index": "/audit",
        "auth.account": "/account",
        "auth.two_factor_setup": "/account/2fa",
    }


def _admin_pages(_w: dict) -> dict[str, str]:
    return {"admin.queue": "/admin/queue", "messages.failed": "/admin/failed", "admin.server": "/admin/server",
            "admin.list_users": "/admin/users"}


def _public_pages(w: dict) -> dict[str, str]:
    return {"auth.login": "/login", "auth.signup": "/signup", "auth.forgot_password": "/login/forgot",
            "auth.reset_password": w["reset_path"],
            "destinations.confirm": f"/destinations/confirm/{w['confirm_token']}",
            "destinations.reenable_link": "/destinations/reenable/not-a-real-token"}  # its 400 page


def _get_pages(app: Flask) -> set[str]:
    return {rule.endpoint for rule in app.url_map.iter_rules()
            if "GET" in rule.methods and rule.endpoint not in NOT_PAGES and not rule.endpoint.startswith("api.")}


@pytest.fixture
def world(db, web_settings, owner, admin):
    """A domain, alias, messages, a bounce, quarantined mail and destinations, all with long values."""
    with db.session() as s:
        user = s.get(User, owner.id)
        domain = add_domain(s, LONG_DOMAIN, user)
        domain.verified = True
        generate_key(s, domain, web_settings.SECRET_KEY)
        alias = add_alias(s, f"{LONG_LOCAL}@{LONG_DOMAIN}", LONG_DESTINATIONS, user, note="Receipts from suppliers")
        add_alias(s, f"*@{LONG_DOMAIN}", LONG_DESTINATIONS[:1], user)
        domain_id, alias_id = domain.id, alias.id
        tfa = create_user(s, "two-factor@people.test", "two-factor-password")
        secret = two_factor.begin_enrolment(s, tfa, web_settings.SECRET_KEY).secret
        two_factor.enable(s, tfa, web_settings.SECRET_KEY, pyotp.TOTP(secret).at(time.time()))
    recipient = f"{LONG_LOCAL}@{LONG_DOMAIN}"
    message_id = seed_message(db, "LAYOUTMESSAGE0001", domain_id, recipient, tuple(LONG_DESTINATIONS),
                              mail_from="a.sender.with.a.long.name@sending-organisation.example",
                              subject="A subject line long enough to wrap on a phone, about the quarterly figures")
    bounced = seed_message(db, "LAYOUTBOUNCED0001", domain_id, recipient, tuple(LONG_DESTINATIONS[:1]))
    seed_quarantined(db, "LAYOUTQUARANT0001", domain_id, recipient, tuple(LONG_DESTINATIONS[:1]))
    with db.session() as s:
        s.get(Message, bounced).state = DONE
        for delivery in s.query(Delivery).filter_by(message_id=bounced):
            delivery.state, delivery.last_code = BOUNCED, 550
            delivery.last_reply = ("5.1.1 <finance.department.team.inbox@a-long-destination-provider.example>: "
                                   "Recipient address rejected: User unknown in virtual mailbox table")
        mailbox = s.query(Mailbox).filter_by(address=LONG_DESTINATIONS[1]).one()
        mailbox.verified_at, mailbox.confirm_nonce = None, secrets.token_urlsafe(24)
        confirm = make_token(web_settings, CONFIRM_DESTINATION, DestinationLink(mailbox.id, mailbox.confirm_nonce))
        reset = make_link(web_settings, s.get(User, owner.id))
    return {"domain_id": domain_id, "alias_id": alias_id, "message_id": message_id, "confirm_token": confirm,
            "reset_path": reset[reset.index("/login/reset/"):]}


def _log_in(page, base: str, email: str, password: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


MEASURE = """() => {
  const MIN_CELL = __MIN__;
  const cells = [...document.querySelectorAll('td, th')].filter(c => c.offsetParent !== null);
  const squeezed = cells.map(c => [c.getBoundingClientRect().width, c.innerText.trim().slice(0, 40)])
                        .filter(([w, text]) => text && w < MIN_CELL);
  // a long value (a DNS record, an address) must get lines of a readable length, not a character or two
  const slivers = [...document.querySelectorAll('main code')].filter(c => c.offsetParent !== null)
    .filter(c => c.innerText.length > 24 && c.getBoundingClientRect().width < 8 * MIN_CELL / 2)
    .map(c => c.innerText.slice(0, 40));
  const brand = document.querySelector('header .brand')?.getBoundingClientRect();
  const overlaps = [...document.querySelectorAll('header nav a, header nav button')].map(a => a.getBoundingClientRect())
    .filter(r => brand && r.left < brand.right && r.right > brand.left && r.top < brand.bottom && r.bottom > brand.top)
    .length;
  return {scroll: document.documentElement.scrollWidth, width: window.innerWidth, squeezed, slivers, overlaps};
}""".replace("__MIN__", str(MIN_CELL))


def _check(page, shot, base: str, name: str, path: str, width: int, problems: list[str]) -> None:
    response = page.goto(f"{base}{path}")
    assert response is not None and response.status < 500, (path, response and response.status)
    m = page.evaluate(MEASURE)
    if m["scroll"] > m["width"]:
        widest = page.evaluate("""() => [...document.querySelectorAll('main *')]
          .filter(e => e.getBoundingClientRect().right > window.innerWidth)
          .map(e => e.tagName + '.' + e.className + ' ' + (e.id || '')).slice(-3)""")
        problems.append(f"{width}px {path}: the page is {m['scroll']}px wide ({widest})")
    if m["squeezed"]:
        problems.append(f"{width}px {path}: cells under {MIN_CELL}px: {m['squeezed'][:3]}")
    if m["slivers"]:
        problems.append(f"{width}px {path}: long values squeezed into a narrow column: {m['slivers'][:3]}")
    if m["overlaps"]:
        problems.append(f"{width}px {path}: the header's links run into the brand")
    shot(f"{name.replace('.', '-')}-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits(live_server, page, shot, world, web_settings, width):
    page.set_viewport_size({"width": width, "height": 900})
    problems: list[str] = []
    visited: set[str] = set()
    for who, pages in (("public", _public_pages), ("owner", _owner_pages), ("admin", _admin_pages)):
        if who == "owner":
            _log_in(page, live_server, "owner@people.test", "owner-password")
        elif who == "admin":
            _log_in(page, live_server, "admin@people.test", "admin-password")
        for endpoint, path in pages(world).items():
            _check(page, shot, live_server, endpoint, path, width, problems)
            visited.add(endpoint)
    _log_in(page, live_server, "two-factor@people.test", "two-factor-password")  # half-way: the code step
    page.wait_for_url(f"{live_server}/login/2fa")
    _check(page, shot, live_server, "auth.login_two_factor", "/login/2fa", width, problems)
    visited.add("auth.login_two_factor")

    assert not problems, "\n".join(problems)
    unvisited = _get_pages(make_web_app(web_settings)) - visited
    assert not unvisited, f"pages without a layout check: {sorted(unvisited)}"


def test_deleting_a_domain_in_the_browser_asks_for_its_name(live_server, page, shot, world, db):
    _log_in(page, live_server, "owner@people.test", "owner-password")
    page.goto(f"{live_server}/domains/{world['domain_id']}")
    page.click("#delete-domain-link")
    expect(page.locator("#deletion-impact li[data-what=aliases]")).to_contain_text("2 aliases")
    page.fill("#confirm_name", "not-the-name.example")
    page.click("#delete-domain")
    expect(page.locator("#confirm_name-error")).to_contain_text(f"type {LONG_DOMAIN} to delete it")
    expect(page.locator("#confirm_name")).to_have_attribute("aria-invalid", "true")
    shot("refused")
    page.fill("#confirm_name", LONG_DOMAIN)
    page.click("#delete-domain")
    page.wait_for_url(f"{live_server}/")
    expect(page.locator(".flash")).to_contain_text(f"{LONG_DOMAIN} deleted.")
    with db.session() as s:
        assert s.get(Domain, world["domain_id"]) is None
