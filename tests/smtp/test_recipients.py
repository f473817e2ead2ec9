"""RCPT resolution against both databases, without the SMTP layer."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from mailferry.models import ROLE_ADMIN, Alias, Domain, User
from smtp import replies
from smtp.recipients import RecipientResolver, is_mailbox, lookup_candidates
from smtp.routes import FORWARD, SRS_RETURN
from smtp.srs import Srs
from tests.smtp.conftest import seed_world

SECRET = "test-srs-secret"


@pytest.fixture
def resolver(db):
    return RecipientResolver(db, Srs(SECRET, max_age_days=21), cache_ttl=60, require_verified=False)


@pytest.fixture
def world(db):
    return seed_world(db)


def test_alias_route(resolver, world):
    resolution = resolver.resolve("Team@ALIAS.test")
    assert resolution.accepted and resolution.reply == replies.OK_RECIPIENT
    route = resolution.route
    assert (route.recipient, route.destinations, route.kind) == ("Team@ALIAS.test", ("a@dest.test", "b@other.test"), FORWARD)
    assert (route.domain_id, route.alias_id) == (world.domain_id, world.aliases["team"])


@pytest.mark.parametrize("address, alias", [
    ("john+anything@alias.test", "john"),
    ("john+vip@alias.test", "john+vip"),
    ("JOHN+VIP@alias.test", "john+vip"),
    ("john+vip+more@alias.test", "john"),
    ("sales+x@catchall.test", "sales"),
    ("who+x@catchall.test", "*"),
    ("+x@catchall.test", "*"),
])
def test_sub_addressing_and_catch_all(resolver, world, address, alias):
    assert resolver.resolve(address).route.alias_id == world.aliases[alias]


def test_trailing_dot_domain_is_ours(resolver, world):
    assert resolver.resolve("john@alias.test.").accepted


def test_valid_srs_address_routes_back_to_the_original_sender(resolver, world):
    original = "Bob+list/x@Example.org"
    srs_address = Srs(SECRET).forward(original, "alias.test")
    resolution = resolver.resolve(srs_address)
    assert resolution.route.kind == SRS_RETURN
    assert resolution.route.destinations == (original,)
    assert resolution.route.domain_id == world.domain_id
    assert resolution.route.alias_id is None


def test_srs_local_part_longer_than_64_octets_is_still_accepted(resolver, world):
    original = "a.very.long.local.part.of.a.mailing.list+bounces-12345@lists.example.org"
    srs_address = Srs(SECRET).forward(original, "alias.test")
    assert len(srs_address.split("@")[0]) > 64
    assert resolver.resolve(srs_address).route.destinations == (original,)


def test_expired_or_forged_srs_address_is_refused(resolver, world):
    old = Srs(SECRET, max_age_days=21)
    old._srs._time_fn = lambda: time.time() - 40 * 86400  # an address minted 40 days ago
    expired = old.forward("bob@example.org", "alias.test")
    assert resolver.resolve(expired).reply == replies.BAD_SRS_ADDRESS
    forged = Srs("another-secret").forward("bob@example.org", "alias.test")
    assert resolver.resolve(forged).reply == replies.BAD_SRS_ADDRESS


def test_srs_address_at_a_foreign_domain_is_relay_denied(resolver, world):
    srs_address = Srs(SECRET).forward("bob@example.org", "elsewhere.test")
    assert resolver.resolve(srs_address).reply == replies.RELAY_DENIED


def test_catch_all_does_not_revive_a_disabled_alias(resolver, world, db):
    with db.session() as s:
        s.execute(update(Alias).where(Alias.id == world.aliases["sales"]).values(enabled=False))
    assert resolver.resolve("sales@catchall.test").reply == replies.UNKNOWN_RECIPIENT
    assert resolver.resolve("other@catchall.test").accepted


def test_disabled_catch_all_refuses_unknown_local_parts(resolver, world, db):
    with db.session() as s:
        s.execute(update(Alias).where(Alias.id == world.aliases["*"]).values(enabled=False))
    assert resolver.resolve("other@catchall.test").reply == replies.UNKNOWN_RECIPIENT
    assert resolver.resolve("sales@catchall.test").accepted


def test_cache_serves_repeat_lookups_until_the_ttl(resolver, world, db):
    first = resolver.resolve("john@alias.test")
    resolver.remember("john@alias.test", first)
    with db.session() as s:
        s.execute(update(Domain).where(Domain.id == world.domain_id).values(verified=False))
    cached = resolver.cached("JOHN@alias.test")
    assert cached.accepted and cached.route.recipient == "JOHN@alias.test"
    assert resolver.resolve("john@alias.test").reply == replies.RELAY_DENIED  # the database itself has moved on
    resolver._cache = {k: (0.0, v) for k, (_, v) in resolver._cache.items()}  # expire every entry
    assert resolver.cached("john@alias.test") is None


def test_no_cache_when_ttl_is_zero(db, world):
    resolver = RecipientResolver(db, Srs(SECRET), cache_ttl=0, require_verified=False)
    resolver.remember("john@alias.test", resolver.resolve("john@alias.test"))
    assert resolver.cached("john@alias.test") is None


def test_lookup_candidates():
    assert lookup_candidates("John+Tag") == ["john+tag", "john", "*"]
    assert lookup_candidates("john") == ["john", "*"]
    assert lookup_candidates("+tag") == ["+tag", "*"]


@pytest.mark.parametrize("address, ok", [
    ("a@example.org", True), ("a.b+c@sub.example.org", True), ("a@[192.0.2.1]", True), ('"a b"@example.org', False),
    ("nodomain", False), ("a@", False), ("@example.org", False), ("a@bad_domain", False), ("a@-x.org", False),
])
def test_is_mailbox(address, ok):
    assert is_mailbox(address) is ok


def test_cache_stays_bounded(resolver, world, monkeypatch):
    monkeypatch.setattr("smtp.recipients.CACHE_MAX_ENTRIES", 5)
    refused = resolver.resolve("nobody@alias.test")
    for n in range(12):
        resolver.remember(f"n{n}@alias.test", refused)
    assert len(resolver._cache) <= 5


@pytest.mark.parametrize("address", ["postmaster@alias.test", "POSTMASTER@Alias.Test", "abuse@alias.test",
                                     "abuse+report@alias.test"])
def test_role_addresses_without_an_alias_go_to_the_domain_owner(resolver, world, address):
    route = resolver.resolve(address).route
    assert route is not None and route.destinations == ("owner@example.org",)
    assert (route.kind, route.domain_id, route.alias_id, route.recipient) == (FORWARD, world.domain_id, None, address)


def test_role_address_prefers_an_alias_and_a_catch_all(resolver, world, db):
    assert resolver.resolve("postmaster@catchall.test").route.alias_id == world.aliases["*"]
    with db.session() as s:
        s.add(Alias(domain_id=world.domain_id, local_part="postmaster", destinations=["pm@dest.test"]))
    assert resolver.resolve("postmaster@alias.test").route.destinations == ("pm@dest.test",)


def test_role_addresses_of_unverified_or_foreign_domains_are_refused(resolver, world):
    assert resolver.resolve("postmaster@unverified.test").reply == replies.RELAY_DENIED
    assert resolver.resolve("postmaster@elsewhere.test").reply == replies.RELAY_DENIED
    assert resolver.resolve("webmaster@alias.test").reply == replies.UNKNOWN_RECIPIENT


def test_bare_postmaster_reaches_the_first_admin(db, world):
    resolver = RecipientResolver(db, Srs(SECRET), cache_ttl=60, hostname="mx.mailferry.test",
                                 require_verified=False)
    assert resolver.resolve("postmaster").reply == replies.UNKNOWN_RECIPIENT  # no admin yet
    with db.session() as s:
        s.add_all([User(email="root@admin.test", password_hash="x", role=ROLE_ADMIN),
                   User(email="later@admin.test", password_hash="x", role=ROLE_ADMIN)])
    for address in ("postmaster", "PostMaster"):
        route = resolver.resolve(address).route
        assert (route.recipient, route.destinations, route.kind) == ("postmaster@mx.mailferry.test",
                                                                    ("root@admin.test",), FORWARD)
        resolver.remember(address, resolver.resolve(address))
        assert resolver.cached(address).route.recipient == "postmaster@mx.mailferry.test"  # never the bare name
