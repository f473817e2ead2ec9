"""Verified destinations in the service layer: a new destination gets one confirmation, the link confirms once,
expired and tampered links change nothing, resends are limited, admins vouch, suspensions are lifted once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rq.job import Job
from sqlalchemy import select, update

from app.services import mailboxes
from app.services.aliases import add_alias, update_alias
from app.services.domains import add_domain
from app.services.errors import FORBIDDEN, INVALID, NOT_FOUND, ServiceError
from harness.settings import make_settings
from mailferry.links import (
    CONFIRM_DESTINATION,
    EXPIRED,
    REENABLE_DESTINATION,
    DestinationLink,
    LinkError,
    link_url,
    make_token,
    suspension_stamp,
)
from mailferry.links import INVALID as LINK_INVALID
from mailferry.models import Alias, BounceEvent, Delivery, Mailbox, Message, User, utcnow
from mailferry.models.mailbox import BY_ADMIN, BY_LINK
from mailferry.models.message import DEFERRED
from mailferry.queue import job_id_for
from tests.app.destinations.helpers import kind_of, mailbox, system_mail_to, token_in, verified_settings
from tests.app.web_fixtures import seed_message


@pytest.fixture
def vsettings(db_url, redis_url):
    return verified_settings(db_url, redis_url)


@pytest.fixture
def domain_id(db, owner):
    with db.session() as s:
        return add_domain(s, "owned.test", owner).id


def _alias(db, settings, local: str, *destinations: str, domain: str = "owned.test"):
    with db.session() as s:
        return add_alias(s, f"{local}@{domain}", list(destinations), settings=settings).id


def _confirm(db, settings, token: str) -> Mailbox:
    with db.session() as s:
        return mailboxes.confirm(s, settings, token)


def _age(db, address: str, **delta) -> None:
    """Pretend the last confirmation to `address` went out `delta` ago."""
    with db.session() as s:
        box = s.get(Mailbox, mailbox(db, address).id)
        box.confirm_sent_at = utcnow() - timedelta(**delta)


def test_a_new_destination_gets_one_confirmation_and_is_reused_by_later_aliases(db, vsettings, domain_id):
    _alias(db, vsettings, "a", "Bob@Dest.test")
    _alias(db, vsettings, "b", "bob@dest.test", "carol@dest.test")
    assert [m.rcpt_tos for m in system_mail_to(db, "bob@dest.test")] == [["bob@dest.test"]]
    assert len(system_mail_to(db, "carol@dest.test")) == 1
    [sent] = system_mail_to(db, "bob@dest.test")
    assert kind_of(sent.raw) == mailboxes.CONFIRMATION and b"owner@people.test" in sent.raw
    box = mailbox(db, "bob@dest.test")
    assert not box.verified and box.confirm_nonce and box.confirm_sent_at is not None


def test_the_link_confirms_once_and_then_is_used(db, vsettings, domain_id):
    _alias(db, vsettings, "a", "bob@dest.test")
    token = token_in(system_mail_to(db, "bob@dest.test")[0].raw)
    with db.session() as s:
        assert mailboxes.read_confirmation(s, vsettings, token).owner_email == "owner@people.test"
    assert not mailbox(db, "bob@dest.test").verified  # reading the link (the GET page) changes nothing
    box = _confirm(db, vsettings, token)
    assert box.verified and box.verified_by == BY_LINK and box.confirm_nonce == ""
    with pytest.raises(LinkError) as err:
        _confirm(db, vsettings, token)
    assert err.value.reason == mailboxes.USED


class _FourDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 4 * 86400


def test_an_expired_or_tampered_link_changes_nothing(db, vsettings, domain_id):
    _alias(db, vsettings, "a", "bob@dest.test")
    box = mailbox(db, "bob@dest.test")
    token = token_in(system_mail_to(db, "bob@dest.test")[0].raw)
    old = URLSafeTimedSerializer(vsettings.SECRET_KEY, salt="mailferry-link-confirm-destination",
                                 signer=_FourDaysAgo).dumps([box.id, box.confirm_nonce])  # CONFIRMATION_LINK_MAX_AGE 3d
    forged = URLSafeTimedSerializer("another-secret-key-of-at-least-32-chars",
                                    salt="mailferry-link-confirm-destination").dumps([box.id, box.confirm_nonce])
    for bad, reason in ((old, EXPIRED), (token[:-3] + "AAA", LINK_INVALID), (forged, LINK_INVALID)):
        with pytest.raises(LinkError) as err:
            _confirm(db, vsettings, bad)
        assert err.value.reason == reason
    assert not mailbox(db, "bob@dest.test").verified
    assert _confirm(db, vsettings, token).verified  # the genuine link still works


def test_a_link_for_another_mailbox_nonce_is_refused(db, vsettings, domain_id):
    """The nonce is what makes a link one-use: a link carrying anything else is refused."""
    _alias(db, vsettings, "a", "bob@dest.test")
    box = mailbox(db, "bob@dest.test")
    with pytest.raises(LinkError) as err:
        _confirm(db, vsettings, make_token(vsettings, CONFIRM_DESTINATION, DestinationLink(box.id, "guessed")))
    assert err.value.reason == mailboxes.USED


def test_resend_waits_ten_minutes_replaces_the_link_and_stops_after_three_a_day(db, vsettings, domain_id, owner):
    _alias(db, vsettings, "a", "bob@dest.test")
    first = token_in(system_mail_to(db, "bob@dest.test")[0].raw)

    def resend():
        with db.session() as s:
            mailboxes.resend(s, s.get(Mailbox, mailbox(db, "bob@dest.test").id), owner, vsettings)

    with pytest.raises(ServiceError, match="less than 10 minutes ago"):
        resend()
    _age(db, "bob@dest.test", minutes=11)
    resend()
    sent = system_mail_to(db, "bob@dest.test")
    assert len(sent) == 2
    with pytest.raises(LinkError):  # the first link was replaced
        _confirm(db, vsettings, first)
    _age(db, "bob@dest.test", minutes=11)
    resend()
    _age(db, "bob@dest.test", minutes=11)
    with pytest.raises(ServiceError, match="3 confirmations today"):
        resend()
    assert len(system_mail_to(db, "bob@dest.test")) == mailboxes.MAX_PER_ADDRESS_PER_DAY
    assert _confirm(db, vsettings, token_in(system_mail_to(db, "bob@dest.test")[-1].raw)).verified
    with pytest.raises(ServiceError, match="already verified"):
        resend()


def test_an_owner_gets_at_most_twenty_confirmations_a_day(db, vsettings, domain_id, owner):
    addresses = [f"r{i}@dest.test" for i in range(mailboxes.MAX_PER_OWNER_PER_DAY + 1)]
    _alias(db, vsettings, "many", *addresses[:19])
    _alias(db, vsettings, "more", *addresses[19:])
    assert [len(system_mail_to(db, a)) for a in addresses] == [1] * 20 + [0]
    last = mailbox(db, addresses[-1])
    assert last.confirm_sent_at is None and not last.verified  # created, waiting: "no link sent yet"
    with db.session() as s, pytest.raises(ServiceError, match="20 confirmations were sent for this account today"):
        mailboxes.resend(s, s.get(Mailbox, last.id), owner, vsettings)


def test_update_alias_confirms_only_new_destinations_and_a_refused_change_sends_nothing(db, vsettings, domain_id):
    alias_id = _alias(db, vsettings, "a", "bob@dest.test")
    with db.session() as s:
        with pytest.raises(ServiceError):
            update_alias(s, s.get(Alias, alias_id), destinations=["new@dest.test"], note="x" * 501, settings=vsettings)
    assert system_mail_to(db, "new@dest.test") == []
    with db.session() as s:
        update_alias(s, s.get(Alias, alias_id), destinations=["bob@dest.test", "new@dest.test"], settings=vsettings)
    assert len(system_mail_to(db, "bob@dest.test")) == 1 and len(system_mail_to(db, "new@dest.test")) == 1


def test_an_admin_marks_a_destination_verified_an_owner_cannot(db, vsettings, domain_id, owner, admin):
    _alias(db, vsettings, "a", "bob@dest.test")
    token = token_in(system_mail_to(db, "bob@dest.test")[0].raw)
    box_id = mailbox(db, "bob@dest.test").id
    with db.session() as s, pytest.raises(ServiceError) as err:
        mailboxes.mark_verified(s, s.get(Mailbox, box_id), owner)
    assert err.value.code == FORBIDDEN
    with db.session() as s:
        box = mailboxes.mark_verified(s, s.get(Mailbox, box_id), admin)
        assert (box.verified, box.verified_by) == (True, BY_ADMIN)
    with pytest.raises(LinkError):  # the outstanding link is used up
        _confirm(db, vsettings, token)


def test_without_required_verification_nothing_is_sent(db, db_url, redis_url, domain_id, owner):
    off = make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, REQUIRE_VERIFIED_DESTINATIONS="false")
    _alias(db, off, "a", "bob@dest.test")
    assert system_mail_to(db, "bob@dest.test") == []
    with db.session() as s, pytest.raises(ServiceError, match="REQUIRE_VERIFIED_DESTINATIONS=false"):
        mailboxes.resend(s, s.get(Mailbox, mailbox(db, "bob@dest.test").id), owner, off)
    with db.session() as s:
        mailboxes.start_signup(s, s.get(User, owner.id), off)
    assert system_mail_to(db, "owner@people.test") == []


def test_signup_sends_a_signup_confirmation_and_admin_made_accounts_are_verified(db, vsettings, owner, admin):
    with db.session() as s:
        mailboxes.start_signup(s, s.get(User, owner.id), vsettings)
        mailboxes.verify_own_address(s, s.get(User, admin.id))
    [sent] = system_mail_to(db, "owner@people.test")
    assert kind_of(sent.raw) == mailboxes.SIGNUP
    assert not mailbox(db, "owner@people.test").verified
    assert _confirm(db, vsettings, token_in(sent.raw)).verified_by == BY_LINK
    assert mailbox(db, "admin@people.test", "admin@people.test").verified_by == BY_ADMIN


def test_owners_see_and_touch_only_their_own_destinations(db, vsettings, domain_id, owner, other_owner, admin):
    _alias(db, vsettings, "a", "bob@dest.test")
    box_id = mailbox(db, "bob@dest.test").id
    with db.session() as s:
        assert [m.address for m in mailboxes.list_mailboxes(s, owner)] == ["bob@dest.test"]
        assert mailboxes.list_mailboxes(s, other_owner) == []
        assert [m.id for m in mailboxes.list_mailboxes(s, admin)] == [box_id]
        for act in (lambda m: mailboxes.resend(s, m, other_owner, vsettings),
                    lambda m: mailboxes.reenable(s, m, other_owner), lambda m: mailboxes.remove(s, m, other_owner)):
            with pytest.raises(ServiceError) as err:
                act(s.get(Mailbox, box_id))
            assert err.value.code == NOT_FOUND


def test_remove_is_refused_while_an_alias_names_the_destination(db, vsettings, domain_id, owner):
    alias_id = _alias(db, vsettings, "a", "Bob@dest.test")
    box_id = mailbox(db, "bob@dest.test").id
    with db.session() as s, pytest.raises(ServiceError, match="is an alias destination"):
        mailboxes.remove(s, s.get(Mailbox, box_id), owner)
    with db.session() as s:
        update_alias(s, s.get(Alias, alias_id), destinations=["carol@dest.test"], settings=vsettings)
        mailboxes.remove(s, s.get(Mailbox, box_id), owner)
    assert mailbox(db, "bob@dest.test") is None


def _suspend(db, address: str) -> Mailbox:
    """What the bounce handling does: suspended now, with bounce events counted."""
    with db.session() as s:
        box = s.get(Mailbox, mailbox(db, address).id)
        box.verified_at, box.verified_by = utcnow(), BY_ADMIN
        box.suspended_at, box.suspended_reason, box.unknown_user_streak = utcnow(), "13 bounces in 24 hours", 3
        s.add_all([BounceEvent(mailbox_id=box.id, status="5.1.1", reply="550 5.1.1 no") for _ in range(13)])
    return mailbox(db, address)


def _reenable_token(settings, box: Mailbox, when=None) -> str:
    link = DestinationLink(box.id, suspension_stamp(when or box.suspended_at))
    return link_url(settings, REENABLE_DESTINATION, link).rsplit("/", 1)[1]


def test_a_reenable_link_lifts_the_suspension_it_was_made_for_once(db, vsettings, domain_id):
    _alias(db, vsettings, "a", "bob@dest.test")
    box = _suspend(db, "bob@dest.test")
    stale = _reenable_token(vsettings, box, box.suspended_at - timedelta(days=2))  # an earlier suspension's link
    token = _reenable_token(vsettings, box)
    with db.session() as s, pytest.raises(LinkError) as err:
        mailboxes.reenable_from_link(s, vsettings, stale)
    assert err.value.reason == mailboxes.USED
    with db.session() as s:
        assert mailboxes.read_reenable(s, vsettings, token).mailbox.id == box.id
    assert mailbox(db, "bob@dest.test").suspended  # reading changes nothing
    with db.session() as s:
        mailboxes.reenable_from_link(s, vsettings, token)
        assert s.query(BounceEvent).count() == 0
    lifted = mailbox(db, "bob@dest.test")
    assert (lifted.suspended_at, lifted.suspended_reason, lifted.unknown_user_streak) == (None, "", 0)
    with db.session() as s, pytest.raises(LinkError) as err:
        mailboxes.reenable_from_link(s, vsettings, token)
    assert err.value.reason == mailboxes.USED


def test_the_owner_reenables_from_the_dashboard(db, vsettings, domain_id, owner):
    _alias(db, vsettings, "a", "bob@dest.test")
    box = _suspend(db, "bob@dest.test")
    with db.session() as s:
        mailboxes.reenable(s, s.get(Mailbox, box.id), owner)
    assert not mailbox(db, "bob@dest.test").suspended
    with db.session() as s, pytest.raises(ServiceError) as err:
        mailboxes.reenable(s, s.get(Mailbox, box.id), owner)
    assert err.value.code == INVALID


def test_reenabling_sends_the_held_mail_at_once(db, vsettings, domain_id, owner, redis_conn):
    """Mail held for a suspended destination waits on the retry schedule (hours); re-enabling makes it due now
    and enqueues it once the change commits."""
    alias = _alias(db, vsettings, "a", "bob@dest.test")
    box = _suspend(db, "bob@dest.test")
    message_id = seed_message(db, "HELDFORBOB000001", domain_id, "a@owned.test", ("bob@dest.test",), alias_id=alias)
    later = utcnow() + timedelta(hours=4)
    with db.session() as s:
        s.execute(update(Delivery).where(Delivery.message_id == message_id)
                  .values(state=DEFERRED, next_attempt_at=later))
        s.execute(update(Message).where(Message.id == message_id).values(next_attempt_at=later))
    redis_conn.flushall()

    with db.session() as s:
        mailboxes.reenable(s, s.get(Mailbox, box.id), owner, vsettings)
        assert redis_conn.keys(f"rq:job:{job_id_for(message_id)}") == []  # not before the commit

    with db.session() as s:
        assert s.get(Message, message_id).next_attempt_at <= utcnow()
        assert s.scalar(select(Delivery.next_attempt_at).where(Delivery.message_id == message_id)) <= utcnow()
    assert Job.fetch(job_id_for(message_id), connection=redis_conn).args == (message_id,)


def test_the_confirmation_is_enqueued_after_the_commit_and_not_at_all_after_a_rollback(db, vsettings, domain_id,
                                                                                      redis_conn):
    with db.session() as s:
        add_alias(s, "a@owned.test", ["gone@dest.test"], settings=vsettings)
        s.rollback()  # the request failed after the alias was added: its confirmation must not be dispatched
        add_alias(s, "b@owned.test", ["bob@dest.test"], settings=vsettings)
        assert system_mail_to(db, "bob@dest.test") == [] and redis_conn.keys("rq:job:*") == []  # not committed yet
    assert system_mail_to(db, "gone@dest.test") == []
    [sent] = system_mail_to(db, "bob@dest.test")
    assert Job.fetch(job_id_for(sent.id), connection=redis_conn).args == (sent.id,)
    assert len(redis_conn.keys("rq:job:*")) == 1
