"""Several accounts may claim an unverified domain name; the first to prove ownership takes it, exactly once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain, get_domain, taken_elsewhere
from app.services.errors import ServiceError
from app.services.verification import expected_records, verify_domain
from mailferry.dkim_keys import signing_key
from mailferry.models import Domain, User
from smtp.recipients import RecipientResolver
from smtp.srs import Srs
from tests.app.conftest import publish


def _claims(db, owner, other_owner):
    with db.session() as s:
        squatter = add_domain(s, "shared.test", s.get(User, other_owner.id))
        real = add_domain(s, "shared.test", s.get(User, owner.id))
        return squatter.id, real.id


def test_each_claim_has_its_own_token_and_the_owner_who_publishes_it_takes_the_name(
        db, owner, other_owner, dns_server, app_settings):
    squatter_id, real_id = _claims(db, owner, other_owner)
    with db.session() as s:
        squatter, real = s.get(Domain, squatter_id), s.get(Domain, real_id)
        assert squatter.verify_token != real.verify_token
        publish(dns_server, expected_records(real, app_settings))  # the real owner's DNS names the real token
        assert not verify_domain(s, squatter, app_settings).verified  # the squatter's token is not published
        report = verify_domain(s, real, app_settings)
        assert report.verified and not report.taken_elsewhere
    with db.session() as s:
        squatter = s.get(Domain, squatter_id)
        assert taken_elsewhere(s, squatter) and not taken_elsewhere(s, s.get(Domain, real_id))
        assert get_domain(s, "shared.test").id == real_id  # by name (admins, the CLI): the verified claim


def test_a_second_claim_passing_later_is_told_the_name_is_taken(db, owner, other_owner, dns_server, app_settings):
    squatter_id, real_id = _claims(db, owner, other_owner)
    with db.session() as s:
        for claim in (s.get(Domain, real_id), s.get(Domain, squatter_id)):  # both tokens published
            publish(dns_server, expected_records(claim, app_settings))
        assert verify_domain(s, s.get(Domain, real_id), app_settings).verified
    with db.session() as s:
        report = verify_domain(s, s.get(Domain, squatter_id), app_settings)
        assert report.passed and report.taken_elsewhere and not report.verified
    with db.session() as s:
        assert [d.id for d in s.scalars(select(Domain).where(Domain.verified))] == [real_id]


def test_mail_and_signatures_follow_the_verified_claim(db, owner, other_owner, dns_server, app_settings):
    squatter_id, real_id = _claims(db, owner, other_owner)
    with db.session() as s:
        add_alias(s, "hello@shared.test", ["real@dest.test"], s.get(User, owner.id))
        squatter = s.get(Domain, squatter_id)
        generate_key(s, squatter, app_settings.SECRET_KEY)  # a key of the squatter's claim, active
        squatter_alias = add_alias(s, "*@shared.test", ["squatter@dest.test"], s.get(User, other_owner.id))
        assert squatter_alias.domain_id == squatter_id
        s.get(Domain, real_id).verified = True
    resolver = RecipientResolver(db, Srs("s" * 40), cache_ttl=0, require_verified=False)
    route = resolver.resolve("hello@shared.test").route
    assert route is not None and route.destinations == ("real@dest.test",)
    assert resolver.resolve("anyone@shared.test").route is None  # the squatter's catch-all is not reached
    with db.session() as s:
        assert signing_key(s, "shared.test", app_settings.SECRET_KEY) is None  # the real claim has no key yet
        generate_key(s, s.get(Domain, real_id), app_settings.SECRET_KEY)
    with db.session() as s:
        key = signing_key(s, "shared.test", app_settings.SECRET_KEY)
        assert key is not None and key.selector == s.get(Domain, real_id).dkim_keys[0].selector


def test_adding_a_verified_name_is_refused_and_an_own_claim_twice_too(db, owner, other_owner):
    with db.session() as s:
        add_domain(s, "mine.test", s.get(User, owner.id)).verified = True
    with db.session() as s:
        with pytest.raises(ServiceError, match="already in use on this server"):
            add_domain(s, "mine.test", s.get(User, other_owner.id))
        with pytest.raises(ServiceError, match="already in your domains"):
            add_domain(s, "MINE.test", s.get(User, owner.id))


def test_two_claims_verifying_at_once_give_the_name_to_exactly_one(db, owner, other_owner, dns_server, app_settings):
    if db.url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: two verifications cannot overlap there")
    squatter_id, real_id = _claims(db, owner, other_owner)
    with db.session() as s:
        for claim in (s.get(Domain, real_id), s.get(Domain, squatter_id)):
            publish(dns_server, expected_records(claim, app_settings))
    start, results = threading.Barrier(2), {}

    def run(domain_id: int) -> None:
        with db.session() as s:
            domain = s.get(Domain, domain_id)
            start.wait()
            results[domain_id] = verify_domain(s, domain, app_settings)

    threads = [threading.Thread(target=run, args=(i,)) for i in (squatter_id, real_id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.verified for r in results.values()) == [False, True]
    assert [r.taken_elsewhere for r in results.values() if not r.verified] == [True]
    with db.session() as s:
        assert len(list(s.scalars(select(Domain).where(Domain.name == "shared.test", Domain.verified)))) == 1
