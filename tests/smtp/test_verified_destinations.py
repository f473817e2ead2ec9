"""REQUIRE_VERIFIED_DESTINATIONS at RCPT, over real SMTP: an alias keeps only its owner's confirmed, unsuspended
destinations; with none left it refuses (550 5.1.1, not naming them); the role addresses follow the same rule."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select, update

from mailferry.models import ROLE_ADMIN, Alias, Delivery, Domain, Mailbox, User, utcnow
from smtp import replies
from smtp.srs import Srs

BODY = b"From: alice@sender.test\r\nTo: x@alias.test\r\nSubject: hi\r\n\r\nHi.\r\n"


@pytest.fixture
def owners(db):
    """alias.test of owner@people.test: destinations ok@ (confirmed), new@ (waiting), gone@ (suspended), and
    ok@ confirmed by another owner only."""
    with db.session() as s:
        owner = User(email="owner@people.test", password_hash="x")
        other = User(email="other@people.test", password_hash="x")
        domain = Domain(name="alias.test", owner=owner, verify_token="t", verified=True)
        now = utcnow()
        s.add_all([owner, other, domain,
                   Alias(domain=domain, local_part="mixed", destinations=["Ok@dest.test", "new@dest.test"]),
                   Alias(domain=domain, local_part="waiting", destinations=["new@dest.test"]),
                   Alias(domain=domain, local_part="gone", destinations=["gone@dest.test"]),
                   Alias(domain=domain, local_part="foreign", destinations=["theirs@dest.test"])])
        s.flush()
        s.add_all([Mailbox(owner_id=owner.id, address="ok@dest.test", verified_at=now, verified_by="link"),
                   Mailbox(owner_id=owner.id, address="new@dest.test", confirm_nonce="n", confirm_sent_at=now),
                   Mailbox(owner_id=owner.id, address="gone@dest.test", verified_at=now, verified_by="link",
                           suspended_at=now, suspended_reason="bounces"),
                   Mailbox(owner_id=owner.id, address="owner@people.test"),
                   Mailbox(owner_id=other.id, address="theirs@dest.test", verified_at=now, verified_by="link")])


@pytest.fixture
def verified_server(owners, start_server):
    return start_server(REQUIRE_VERIFIED_DESTINATIONS=True, SMTP_RECIPIENT_CACHE_TTL=0)


def rcpt(server, address: str) -> tuple[int, str]:
    with smtplib.SMTP(*server, timeout=10) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        code, text = client.rcpt(address)
        return code, text.decode()


def send(server, address: str) -> str:
    with smtplib.SMTP(*server, timeout=10) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        assert client.rcpt(address)[0] == 250
        code, text = client.data(BODY)
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[1]


def destinations_of(db, message_id: str) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Delivery.destination).where(Delivery.message_id == message_id)))


def test_an_alias_delivers_only_to_its_confirmed_destination(verified_server, db):
    assert destinations_of(db, send(verified_server, "mixed@alias.test")) == ["Ok@dest.test"]


@pytest.mark.parametrize("alias", ["waiting", "gone", "foreign"])
def test_an_alias_without_a_usable_destination_refuses_at_rcpt(verified_server, db, alias):
    """Waiting for confirmation, suspended, or confirmed only by another owner: nothing to deliver to."""
    code, text = rcpt(verified_server, f"{alias}@alias.test")
    assert f"{code} {text}" == replies.UNCONFIRMED_DESTINATION
    assert text.startswith("5.1.1") and "dest.test" not in text
    with db.session() as s:
        assert s.scalar(select(Delivery.id)) is None


def test_confirming_opens_the_alias(verified_server, db):
    assert rcpt(verified_server, "waiting@alias.test")[0] == 550
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.address == "new@dest.test").values(verified_at=utcnow()))
    assert destinations_of(db, send(verified_server, "waiting@alias.test")) == ["new@dest.test"]


def test_role_addresses_need_a_confirmed_account_address(verified_server, db):
    assert rcpt(verified_server, "postmaster@alias.test")[0] == 550  # the owner has not confirmed their address
    with db.session() as s:
        s.execute(update(Mailbox).where(Mailbox.address == "owner@people.test").values(verified_at=utcnow()))
    assert destinations_of(db, send(verified_server, "abuse@alias.test")) == ["owner@people.test"]


def test_the_server_postmaster_is_the_first_admin_with_a_confirmed_address(owners, start_server, db):
    server = start_server(REQUIRE_VERIFIED_DESTINATIONS=True, SMTP_RECIPIENT_CACHE_TTL=0)
    with db.session() as s:
        s.execute(update(User).values(role=ROLE_ADMIN))
    assert rcpt(server, "postmaster")[0] == 550  # owner@ (first admin) unconfirmed, other@ has no mailbox of its own
    with db.session() as s:
        other = s.scalar(select(User).where(User.email == "other@people.test"))
        s.add(Mailbox(owner_id=other.id, address="other@people.test", verified_at=utcnow(), verified_by="admin"))
    assert destinations_of(db, send(server, "postmaster")) == ["other@people.test"]


def test_srs_returns_are_not_affected(verified_server, db, settings):
    address = Srs(settings.srs_secret, settings.SRS_MAX_AGE_DAYS).forward("bob@remote.test", "alias.test")
    assert destinations_of(db, send(verified_server, address)) == ["bob@remote.test"]


def test_with_verification_off_every_destination_receives(owners, start_server, db):
    server = start_server(REQUIRE_VERIFIED_DESTINATIONS=False, SMTP_RECIPIENT_CACHE_TTL=0)
    assert sorted(destinations_of(db, send(server, "mixed@alias.test"))) == ["Ok@dest.test", "new@dest.test"]
    assert destinations_of(db, send(server, "waiting@alias.test")) == ["new@dest.test"]
