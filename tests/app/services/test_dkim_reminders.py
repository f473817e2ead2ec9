"""The DKIM rotation reminder: once per key when the active key is older than DKIM_ROTATION_REMINDER_DAYS,
never for a young key, a key not signing, or with the setting at 0; its instructions name real buttons and
commands."""

from __future__ import annotations

import os
from datetime import timedelta

from app import create_app
from app.services.dkim_keys import activate_key, generate_key
from app.services.dkim_reminders import send_rotation_reminders
from app.services.domains import add_domain
from harness.settings import make_settings
from mailferry.models import DkimKey
from mailferry.models.notification import DKIM_ROTATION
from tests.app.services.notices import dispatched, notices

NAME = "example.test"
SHOW = os.path.join(os.path.dirname(__file__), "..", "..", "..", "app", "templates", "domains", "show.html")


def domain_with_key(db, owner, settings):
    """(domain id, the active key)."""
    with db.session() as s:
        domain = add_domain(s, NAME, owner)
        return domain.id, generate_key(s, domain, settings.SECRET_KEY, algorithm="ed25519")


def test_an_old_key_is_reminded_of_once(db, app_settings, owner, redis_conn):
    domain_id, key = domain_with_key(db, owner, app_settings)
    old = key.created_at + timedelta(days=app_settings.DKIM_ROTATION_REMINDER_DAYS, hours=1)
    assert send_rotation_reminders(db, app_settings, key.created_at + timedelta(days=10)) == 0  # young
    assert send_rotation_reminders(db, app_settings, old) == 1
    assert send_rotation_reminders(db, app_settings, old + timedelta(days=1)) == 0  # once per key
    [reminder] = notices(db, DKIM_ROTATION)
    assert reminder.key == f"dkim:{key.id}" and reminder.to == owner.email
    assert reminder.mime["Subject"] == f"{NAME}: time to rotate the DKIM key"
    assert dispatched(redis_conn, reminder)
    text = reminder.text
    assert f"selector {key.selector}" in text and "180 days ago" in text
    assert f"flask --app wsgi dkim generate {NAME}" in text and f"flask --app wsgi dkim activate {NAME}" in text
    assert f"{app_settings.public_url}/domains/{domain_id}#dkim" in text
    assert f'href="{app_settings.public_url}/domains/{domain_id}#dkim"' in reminder.html


def test_a_rotated_key_gets_its_own_reminder_and_a_pending_key_none(db, app_settings, owner):
    domain_id, first = domain_with_key(db, owner, app_settings)
    later = first.created_at + timedelta(days=200)
    assert send_rotation_reminders(db, app_settings, later) == 1
    with db.session() as s:
        pending = generate_key(s, s.get(DkimKey, first.id).domain, app_settings.SECRET_KEY, algorithm="ed25519")
        pending.created_at = first.created_at  # as old as the first, but not signing
    assert send_rotation_reminders(db, app_settings, later + timedelta(days=1)) == 0
    with db.session() as s:
        activate_key(s, s.get(DkimKey, pending.id))
    assert send_rotation_reminders(db, app_settings, later + timedelta(days=2)) == 1
    assert [n.key for n in notices(db, DKIM_ROTATION)] == [f"dkim:{first.id}", f"dkim:{pending.id}"]


def test_zero_days_means_never(db, app_settings, owner):
    _domain_id, key = domain_with_key(db, owner, app_settings)
    settings = app_settings.replace(DKIM_ROTATION_REMINDER_DAYS=0)
    assert send_rotation_reminders(db, settings, key.created_at + timedelta(days=5000)) == 0
    assert send_rotation_reminders(db, app_settings.replace(DKIM_ROTATION_REMINDER_DAYS=30),
                                   key.created_at + timedelta(days=31)) == 1


def test_the_instructions_name_real_buttons_and_commands(tmp_path):
    with open(SHOW, encoding="utf-8") as f:
        page = f.read()
    assert "Create a new key (rotate)" in page and "Switch to this key" in page and "Verify now" in page
    dkim = create_app(make_settings(DATABASE_URL=f"sqlite:///{tmp_path}/unused.db")).cli.commands["dkim"]
    assert {"generate", "activate"} <= set(dkim.commands)
