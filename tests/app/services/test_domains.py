import pytest

from app.services.domains import add_domain, delete_domain, domain_dict, get_domain, list_domains
from app.services.errors import ServiceError


def test_add_domain_normalises_idna_and_case(db, owner):
    with db.session() as s:
        domain = add_domain(s, " Bücher.Example. ", owner)
        assert domain.name == "xn--bcher-kva.example"
        assert len(domain.verify_token) == 32 and not domain.verified
        data = domain_dict(domain)
    assert data["unicode_name"] == "bücher.example" and data["owner"] == "owner@people.test"
    with db.session() as s:
        assert get_domain(s, "BÜCHER.example").id == domain.id


@pytest.mark.parametrize("name", ["", "localhost", "exa mple.test", "-bad.test", "a..test", "127.0.0.1",
                                  "x" * 64 + ".test", "under_score.test"])
def test_invalid_domain_names_are_refused(db, owner, name):
    with db.session() as s, pytest.raises(ServiceError) as err:
        add_domain(s, name, owner)
    assert err.value.code == "invalid" and err.value.field == "name"


def test_duplicate_domain_is_refused(db, owner, other_owner):
    with db.session() as s:
        add_domain(s, "example.test", owner).verified = True
    with db.session() as s, pytest.raises(ServiceError) as err:
        add_domain(s, "EXAMPLE.test", other_owner)  # a pending claim would not block it: tests/.../test_domain_claims
    assert err.value.code == "exists"


def test_owners_see_only_their_domains(db, owner, other_owner, admin):
    with db.session() as s:
        mine = add_domain(s, "mine.test", owner, actor=owner)
        theirs = add_domain(s, "theirs.test", other_owner)
    with db.session() as s:
        assert [d.name for d in list_domains(s, owner)] == ["mine.test"]
        assert [d.name for d in list_domains(s, admin)] == ["mine.test", "theirs.test"]
        for key in (theirs.id, "theirs.test"):
            with pytest.raises(ServiceError) as err:
                get_domain(s, key, owner)
            assert err.value.code == "not_found"  # not "forbidden": existence is not revealed
        assert get_domain(s, theirs.id, admin).name == "theirs.test"
        with pytest.raises(ServiceError) as err:
            delete_domain(s, s.merge(theirs), owner)
        assert err.value.code == "not_found"
        with pytest.raises(ServiceError) as err:
            add_domain(s, "forme.test", other_owner, actor=owner)
        assert err.value.code == "forbidden"
        delete_domain(s, get_domain(s, mine.id, owner), owner)
    with db.session() as s:
        assert [d.name for d in list_domains(s)] == ["theirs.test"]
