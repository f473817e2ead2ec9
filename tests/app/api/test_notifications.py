"""GET/PUT /api/v1/account/notifications: the caller's own switches; a kind turned off is not sent."""

from __future__ import annotations

from datetime import timedelta

from app.services.dkim_keys import generate_key
from app.services.dkim_reminders import send_rotation_reminders
from mailferry.models import Domain
from mailferry.models.notification import DKIM_ROTATION, NOTIFICATION_KINDS
from tests.app.services.notices import notices


def test_get_and_put_the_switches(owner_api, other_api):
    assert owner_api("GET", "/account/notifications", status=200).get_json() == {
        "notifications": dict.fromkeys(NOTIFICATION_KINDS, True)}
    body = owner_api("PUT", "/account/notifications", {DKIM_ROTATION: False}, status=200).get_json()
    assert body["notifications"] == {**dict.fromkeys(NOTIFICATION_KINDS, True), DKIM_ROTATION: False}
    assert owner_api("GET", "/account/notifications", status=200).get_json() == body
    assert other_api("GET", "/account/notifications", status=200).get_json()["notifications"][DKIM_ROTATION] is True


def test_bad_bodies_are_refused(owner_api):
    for body, field in (({"newsletter": True}, "newsletter"), ({DKIM_ROTATION: "no"}, DKIM_ROTATION)):
        error = owner_api("PUT", "/account/notifications", body, status=400).get_json()["error"]
        assert (error["code"], error["field"]) == ("invalid", field)
    assert owner_api("PUT", "/account/notifications", ["dns_broken"], status=400).get_json()["error"]["code"] == "invalid"
    assert owner_api("GET", "/account/notifications", status=200).get_json()["notifications"][DKIM_ROTATION] is True


def test_a_kind_turned_off_through_the_api_is_not_sent(owner_api, db, web_settings, owner_domain):
    with db.session() as s:
        key = generate_key(s, s.get(Domain, owner_domain), web_settings.SECRET_KEY, algorithm="ed25519")
    old = key.created_at + timedelta(days=web_settings.DKIM_ROTATION_REMINDER_DAYS + 1)
    owner_api("PUT", "/account/notifications", {DKIM_ROTATION: False}, status=200)
    assert send_rotation_reminders(db, web_settings, old) == 0
    owner_api("PUT", "/account/notifications", {DKIM_ROTATION: True}, status=200)
    assert send_rotation_reminders(db, web_settings, old) == 1
    assert len(notices(db, DKIM_ROTATION)) == 1
