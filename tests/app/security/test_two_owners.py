"""One message for aliases of two owners, through the real inbound server and an in-process delivery pass to
loopback MX sinks: each owner sees the message with their own routes only; nothing on the other owner's pages
(domains, stats, message log, message page, quarantine, API) names the first owner's domain, aliases or
destinations, and the bounce report (DSN) about the first owner's failed copy is the first owner's."""

import smtplib

import pytest
from sqlalchemy import select, update

from mailferry.models import Delivery, Mailbox, Message
from smtp.delivery import context
from smtp.delivery.job import run
from smtp.server import ServerThread
from tests.app.web_fixtures import Browser, api_for

SENDER_IP = "127.0.0.7"  # sender.test's SPF allows it, so a failure is reported to the sender (a DSN)


@pytest.fixture
def web_settings(app_settings, redis_url, internet):
    return app_settings.replace(REDIS_URL=redis_url, SMTP_DIRECT_PORT=internet.port)


@pytest.fixture
def inbound(web_settings, dns_server):
    dns_server.set("sender.test", "TXT", f"v=spf1 ip4:{SENDER_IP} -all")
    server = ServerThread(web_settings.replace(SMTP_LISTEN=("127.0.0.1", 0)))
    address = server.start()
    yield address
    server.stop()


def _send(inbound, *recipients: str) -> str:
    """One transaction from an SPF-authorised sender, RCPT to each recipient; returns the queue id."""
    body = (f"From: Sender <sender@sender.test>\r\nTo: {recipients[0]}\r\nSubject: for you\r\n"
            "Message-ID: <shared@sender.test>\r\n\r\nHello\r\n")
    with smtplib.SMTP(*inbound, timeout=10, source_address=(SENDER_IP, 0)) as client:
        client.ehlo("mail.sender.test")
        assert client.mail("sender@sender.test")[0] == 250
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            assert code == 250, reply
        code, reply = client.data(body.encode())
        assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def _deliver(settings, message_id: str) -> None:
    ctx = context.configure(settings)
    try:
        run(ctx, message_id)
    finally:
        context.reset()


def _pages(web_app, db, email: str, password: str, user, world, message_id: str) -> dict[str, str]:
    browser, api = Browser(web_app).login(email, password), api_for(web_app, db, user)
    pages = ["/", "/stats", f"/domains/{world.domain_id}", f"/domains/{world.domain_id}/stats",
             f"/domains/{world.domain_id}/messages", f"/domains/{world.domain_id}/aliases",
             f"/domains/{world.domain_id}/quarantine", f"/messages/{message_id}", "/account"]
    apis = ["/domains", "/stats", f"/domains/{world.domain_id}/messages", f"/domains/{world.domain_id}/stats",
            f"/domains/{world.domain_id}/quarantine", f"/messages/{message_id}"]
    found = {}
    for url in pages:
        response = browser.get(url)
        assert response.status_code == 200, url
        found[url] = response.get_data(as_text=True)
    for path in apis:
        found[f"/api/v1{path}"] = api("GET", path, status=200).get_data(as_text=True)
    return found


def _leaks(pages: dict[str, str], world) -> list[tuple[str, str]]:
    names = {k: v for k, v in world.markers().items() if k in ("domain", "alias", "destination")}
    return [(url, name) for url, body in pages.items() for name, value in names.items() if value in body]


def _lift_suspensions(db, *worlds) -> None:
    """The worlds' destinations are suspended (so the walk has a re-enable link to try); here mail must flow."""
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.id.in_([w.mailbox_id for w in worlds])).values(suspended_at=None))


def test_each_owner_sees_only_their_own_part_of_a_shared_message(web_app, db, web_settings, internet, inbound,
                                                                   first_world, second_world, owner, other_owner):
    internet.mx("first-mailbox.test", (10, "mx.first-mailbox.test", "127.0.0.2"))
    internet.mx("second-mailbox.test", (10, "mx.second-mailbox.test", "127.0.0.3"))
    internet.sink("127.0.0.2").handler.data_replies.append("550 5.1.1 no such user")
    internet.sink("127.0.0.3")
    _lift_suspensions(db, first_world, second_world)
    # The second owner's alias first: the delivery pass meets their copy before the first owner's failure.
    message_id = _send(inbound, f"{second_world.alias}@{second_world.domain}",
                       f"{first_world.alias}@{first_world.domain}")
    _deliver(web_settings, message_id)
    with db.session() as s:
        states = {d.destination: d.state for d in s.get(Message, message_id).deliveries}
        dsn = s.scalar(select(Delivery).where(Delivery.kind == "dsn"))
        assert states == {first_world.destination: "bounced", second_world.destination: "delivered"}
        assert dsn is not None and dsn.domain_id == first_world.domain_id, "the DSN reports the first owner's copy"
        dsn_id = dsn.message_id

    second = _pages(web_app, db, "other@people.test", "other-password", other_owner, second_world, message_id)
    assert second_world.destination in second[f"/messages/{message_id}"]
    assert message_id in second[f"/api/v1/domains/{second_world.domain_id}/messages"]
    assert dsn_id not in second[f"/domains/{second_world.domain_id}/messages"]
    assert not _leaks(second, first_world)
    # Their own seeded message and held one plus the shared one; the first owner's three are not counted.
    totals = api_for(web_app, db, other_owner)("GET", "/stats", status=200).get_json()["totals"]
    assert (totals["received"], totals["forwarded"], totals["bounced"]) == (3, 1, 0)

    first = _pages(web_app, db, "owner@people.test", "owner-password", owner, first_world, message_id)
    assert dsn_id in first[f"/domains/{first_world.domain_id}/messages"]
    assert not _leaks(first, second_world)
