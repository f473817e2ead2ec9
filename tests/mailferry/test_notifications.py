"""notify: once per event, only when wanted, to the owner's account address, in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailferry.models import Delivery, Message, Notification, User
from mailferry.models.notification import DNS_BROKEN, QUARANTINE_DIGEST
from mailferry.notifications import notify, wants
from mailferry.system_mail import SYSTEM_KIND, SystemMessage

NOTICE = SystemMessage(to="ignored@x.test", subject="A record broke", text="t", html="<p>t</p>", kind=DNS_BROKEN)


@pytest.fixture
def owner(db) -> int:
    with db.session() as s:
        user = User(email="owner@example.test", password_hash="x")
        s.add(user)
        s.flush()
        return user.id


def test_one_notice_per_event_to_the_owners_address(db, settings, owner):
    with db.engine.begin() as conn:
        first = notify(conn, settings, owner, DNS_BROKEN, "domain:1:mx:2026-12-01T00:00", NOTICE)
        again = notify(conn, settings, owner, DNS_BROKEN, "domain:1:mx:2026-12-01T00:00", NOTICE)
        other = notify(conn, settings, owner, DNS_BROKEN, "domain:1:mx:2026-12-02T00:00", NOTICE)
    assert first and other and again is None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 2
        delivery = s.scalar(select(Delivery).where(Delivery.message_id == first))
        assert (delivery.destination, delivery.kind) == ("owner@example.test", SYSTEM_KIND)
        assert s.scalar(select(Notification.message_id).where(Notification.key.endswith("01T00:00"))) == first


def test_a_kind_turned_off_or_an_inactive_owner_gets_nothing(db, settings, owner):
    with db.session() as s:
        s.get(User, owner).notification_prefs = {DNS_BROKEN: False}
    with db.engine.begin() as conn:
        assert notify(conn, settings, owner, DNS_BROKEN, "k", NOTICE) is None
        assert notify(conn, settings, owner, QUARANTINE_DIGEST, "k", NOTICE) is not None
    with db.session() as s:
        s.get(User, owner).active = False
    with db.engine.begin() as conn:
        assert notify(conn, settings, owner, QUARANTINE_DIGEST, "k2", NOTICE) is None


def test_a_rolled_back_notice_is_sent_later(db, settings, owner):
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        notify(conn, settings, owner, DNS_BROKEN, "k", NOTICE)
        raise RuntimeError("the caller's transaction failed")
    with db.engine.begin() as conn:
        assert notify(conn, settings, owner, DNS_BROKEN, "k", NOTICE) is not None


def test_wants_defaults_to_on_and_knows_the_kinds():
    assert wants(None, DNS_BROKEN) and wants({DNS_BROKEN: True}, DNS_BROKEN) and not wants({DNS_BROKEN: False}, DNS_BROKEN)
    with pytest.raises(ValueError):
        wants(None, "no-such-kind")

