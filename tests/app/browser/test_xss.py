"""Stored XSS: what strangers put in a message (Subject, From display name, envelope sender, recipient, a remote
server's reply, the filter's reason) and what the owner typed (an alias note) is shown as text in a real
browser: no script runs, no dialog opens, and each payload is readable on the page as written."""

from __future__ import annotations

from playwright.sync_api import expect

from app.services.aliases import add_alias
from mailferry.models import DeliveryAttempt
from mailferry.models.message import DEFERRED, QUARANTINED, QUEUED
from smtp.routes import Route, build_message

PAYLOADS = {
    "subject": "<img src=x onerror=window.__xss='subject'>",
    "display name": "<script>window.__xss='from'</script>",
    "envelope sender": "<svg onload=alert('sender')>@evil.test",
    "recipient": "<img src=x onerror=alert('rcpt')>@owned.test",
    "destination": "\"><script>window.__xss='dest'</script>@dest.test",
    "reply": "<iframe src=javascript:alert('reply')></iframe>",
    "reason": "<body onload=window.__xss='reason'>",
    "note": "<img src=x onerror=window.__xss='note'>",
}


def _seed(db, domain_id: int, message_id: str, state: str) -> None:
    raw = (f"From: \"{PAYLOADS['display name']}\" <a@evil.test>\r\nTo: x@owned.test\r\n"
           f"Subject: {PAYLOADS['subject']}\r\nMessage-ID: <{message_id}@evil.test>\r\n\r\nbody\r\n").encode()
    route = Route(PAYLOADS["recipient"], (PAYLOADS["destination"],), domain_id=domain_id)
    with db.session() as s:
        message = build_message(message_id, mail_from=PAYLOADS["envelope sender"], raw=raw, routes=[route],
                                peer="198.51.100.9", helo="evil.test")
        message.state, message.filter_reason = state, PAYLOADS["reason"]
        s.add(message)
        s.flush()
        delivery = message.deliveries[0]
        delivery.state, delivery.last_reply = DEFERRED, PAYLOADS["reply"]
        s.add(DeliveryAttempt(delivery_id=delivery.id, route="mx:mx.dest.test", code=451, reply=PAYLOADS["reply"],
                              tls=False, outcome=DEFERRED))


def test_payloads_in_messages_and_notes_render_inert(live_server, page, db, owner, owner_domain):
    base = live_server
    with db.session() as s:
        alias_id = add_alias(s, "noted@owned.test", ["me@dest.test"], note=PAYLOADS["note"]).id
    _seed(db, owner_domain, "XSSLOGGED1", QUEUED)
    _seed(db, owner_domain, "XSSHELD1", QUARANTINED)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/login")
    page.fill("#email", "owner@people.test")
    page.fill("#password", "owner-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    visits = {
        f"/domains/{owner_domain}/messages": ("subject", "envelope sender", "recipient", "destination", "reason"),
        "/messages/XSSLOGGED1": ("subject", "envelope sender", "recipient", "destination", "reply"),
        "/messages/XSSHELD1": ("subject", "reason"),
        f"/domains/{owner_domain}/quarantine": ("subject", "display name", "envelope sender", "reason"),
        f"/domains/{owner_domain}/aliases": ("note",),
        f"/domains/{owner_domain}/messages?q=%3Cscript%3Ewindow.__xss%3D%27q%27%3C%2Fscript%3E": (),
    }
    for path, shown in visits.items():
        page.goto(f"{base}{path}")
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None, path
        for name in shown:
            expect(page.locator("main")).to_contain_text(PAYLOADS[name].split("@")[0])
    page.goto(f"{base}/aliases/{alias_id}/edit")
    assert page.input_value("#note") == PAYLOADS["note"]  # in an attribute, still the text as typed
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
