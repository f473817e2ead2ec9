"""The daily quarantine digest: only when something was held since the last digest, once a day, listing sender,
subject, domain and why with the quarantine page's link; never the content; subjects escaped in the HTML."""

from __future__ import annotations

from datetime import timedelta

from app.services.domains import add_domain
from app.services.notification_prefs import set_preferences
from app.services.quarantine import get_held, release
from app.services.quarantine_digest import LISTED, SETTLE, send_digests
from mailferry.models import Message, utcnow
from mailferry.models.notification import QUARANTINE_DIGEST
from tests.app.services.notices import dispatched, notices
from tests.app.web_fixtures import seed_quarantined

BODY = "the-secret-body-of-the-message"
SCRIPT = "<script>alert(1)</script> Cheap watches"


def owned(db, user, name: str = "owned.test") -> int:
    with db.session() as s:
        return add_domain(s, name, user).id


def hold(db, message_id: str, domain_id: int, received_at, subject: str = "Cheap watches") -> str:
    """A quarantined message whose body carries BODY."""
    seed_quarantined(db, message_id, domain_id, received_at=received_at)
    with db.session() as s:
        message = s.get(Message, message_id)
        message.subject = subject
        message.raw = message.raw.replace(b"\r\n\r\nHi\r\n", f"\r\n\r\n{BODY}\r\n".encode())
    return message_id


def test_nothing_held_nothing_sent(db, app_settings, owner):
    owned(db, owner)
    assert send_digests(db, app_settings) == 0
    assert notices(db, QUARANTINE_DIGEST) == []


def test_one_digest_a_day_of_what_was_held_since_the_last(db, app_settings, owner, redis_conn):
    domain_id = owned(db, owner)
    now = utcnow()
    hold(db, "held-1", domain_id, now - timedelta(hours=5), subject=SCRIPT)
    hold(db, "held-2", domain_id, now - timedelta(hours=2))

    assert send_digests(db, app_settings, now) == 1
    assert send_digests(db, app_settings, now + timedelta(hours=1)) == 0  # the same day: done
    [digest] = notices(db, QUARANTINE_DIGEST)
    assert digest.key == f"digest:{now.date().isoformat()}" and digest.to == owner.email
    assert digest.mime["Subject"] == "Quarantine: 2 new messages held for you"
    assert dispatched(redis_conn, digest)
    text, html = digest.text, digest.html
    for shown in ("owned.test", "sender@outside.test", "Cheap watches", "rspamd: add header, spam score 9.50",
                  f"{app_settings.public_url}/domains/{domain_id}/quarantine"):
        assert shown in text and shown in html, shown
    assert SCRIPT in text and f"deleted after {app_settings.QUARANTINE_DAYS} days" in text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert BODY not in digest.mime.as_string()

    tomorrow = now + timedelta(days=1)
    assert send_digests(db, app_settings, tomorrow) == 0  # nothing new since
    hold(db, "held-3", domain_id, tomorrow + timedelta(hours=3))
    assert send_digests(db, app_settings, tomorrow + timedelta(days=1)) == 1
    latest = notices(db, QUARANTINE_DIGEST)[-1]
    assert latest.mime["Subject"] == "Quarantine: 1 new message held for you"
    assert latest.text.count("Subject: ") == 1 and SCRIPT not in latest.text


def test_mail_held_during_the_run_waits_for_the_next_digest(db, app_settings, owner):
    domain_id = owned(db, owner)
    now = utcnow()
    hold(db, "early", domain_id, now - SETTLE - timedelta(seconds=1))
    hold(db, "late", domain_id, now - SETTLE + timedelta(seconds=1), subject="Arrived late")
    assert send_digests(db, app_settings, now) == 1
    assert "Arrived late" not in notices(db, QUARANTINE_DIGEST)[0].text
    assert send_digests(db, app_settings, now + timedelta(days=1)) == 1
    assert "Arrived late" in notices(db, QUARANTINE_DIGEST)[1].text


def test_each_owner_gets_only_their_own_and_released_mail_is_left_out(db, app_settings, owner, other_owner):
    mine, theirs = owned(db, owner), owned(db, other_owner, "other.test")
    now = utcnow()
    hold(db, "mine", mine, now - timedelta(hours=1), subject="For the owner")
    hold(db, "gone", mine, now - timedelta(hours=1), subject="Released already")
    hold(db, "theirs", theirs, now - timedelta(hours=1), subject="For the other owner")
    with db.session() as s:
        release(s, get_held(s, "gone"))
    assert send_digests(db, app_settings, now) == 2
    by_owner = {n.to: n.text for n in notices(db, QUARANTINE_DIGEST)}
    assert "For the owner" in by_owner[owner.email] and "For the other owner" not in by_owner[owner.email]
    assert "For the other owner" in by_owner[other_owner.email] and "owned.test" not in by_owner[other_owner.email]
    assert "Released already" not in by_owner[owner.email]


def test_an_owner_who_turned_digests_off_gets_none(db, app_settings, owner):
    domain_id = owned(db, owner)
    now = utcnow()
    hold(db, "held", domain_id, now - timedelta(hours=1))
    with db.session() as s:
        set_preferences(s, owner.id, owner, {QUARANTINE_DIGEST: False})
    assert send_digests(db, app_settings, now) == 0
    assert notices(db, QUARANTINE_DIGEST) == []


def test_a_long_digest_lists_the_first_and_counts_the_rest(db, app_settings, owner):
    domain_id = owned(db, owner)
    now = utcnow()
    for i in range(LISTED + 2):
        hold(db, f"held-{i}", domain_id, now - timedelta(minutes=100 - i))
    assert send_digests(db, app_settings, now) == 1
    [digest] = notices(db, QUARANTINE_DIGEST)
    assert digest.mime["Subject"] == f"Quarantine: {LISTED + 2} new messages held for you"
    assert digest.text.count("Subject: Cheap watches") == LISTED and "and 2 more" in digest.text


def test_control_characters_do_not_reach_the_digest(db, app_settings, owner):
    domain_id = owned(db, owner)
    now = utcnow()
    hold(db, "held", domain_id, now - timedelta(hours=1), subject="\x1b[2JRed\u2028Bcc: victim@x.test\x07")
    assert send_digests(db, app_settings, now) == 1
    [digest] = notices(db, QUARANTINE_DIGEST)
    assert "Subject: [2JRed Bcc: victim@x.test" in digest.text
    assert not {"\x1b", "\u2028", "\x07"} & set(digest.text + digest.html)
