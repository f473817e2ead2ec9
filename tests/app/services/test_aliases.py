import pytest

from app.services.aliases import (
    add_alias,
    alias_dict,
    delete_alias,
    find_alias,
    get_alias,
    list_aliases,
    parse_destinations,
    update_alias,
)
from app.services.domains import add_domain
from app.services.errors import ServiceError
from mailferry.models import CATCH_ALL


@pytest.fixture
def domains(db, owner, other_owner):
    with db.session() as s:
        return add_domain(s, "example.test", owner).id, add_domain(s, "other.test", other_owner).id


def test_add_alias_with_several_destinations(db, domains):
    with db.session() as s:
        alias = add_alias(s, "Sales@Example.TEST", "a@gmail.test, B@Ünicode.test ; a@GMAIL.test", note=" hi ")
        data = alias_dict(alias)
    assert data["address"] == "sales@example.test" and data["enabled"] and data["note"] == "hi"
    assert data["destinations"] == ["a@gmail.test", "B@xn--nicode-2ya.test"]
    assert not data["catch_all"]


def test_catch_all(db, domains):
    with db.session() as s:
        alias = add_alias(s, "*@example.test", ["me@mail.test"])
        assert alias.local_part == CATCH_ALL and alias.is_catch_all
        assert find_alias(s, "*@example.test").id == alias.id


@pytest.mark.parametrize("address, destinations, field, text", [
    ("sales", "a@mail.test", "address", "not a mail address"),
    ("sa les@example.test", "a@mail.test", "address", "not a valid local part"),
    ("sales+tag@example.test", "a@mail.test", "address", "reserved for sub-addressing"),
    ("x" * 65 + "@example.test", "a@mail.test", "address", "at most 64"),
    ("sales@example.test", "", "destinations", "at least one destination"),
    ("sales@example.test", "a@mail.test, nope", "destinations", "destination 2 of 2: 'nope' is not a mail address"),
    ("sales@example.test", "a b@mail.test", "destinations", "destination 1 of 2: 'a' is not a mail address"),
    ("sales@example.test", "bob@@mail.test", "destinations", "'bob@@mail.test' has an invalid local part"),
    ("sales@example.test", ["a@mail.test", "a\tb@mail.test"], "destinations", "a tab"),
    ("sales@example.test", "a@mail.test\rb@mail.test", "destinations", "carriage return"),
    ("sales@example.test", "SALES@example.test", "destinations", "would forward to itself"),
    ("sales@example.test", ",".join(f"u{i}@mail.test" for i in range(21)), "destinations", "at most 20"),
])
def test_alias_validation(db, domains, address, destinations, field, text):
    with db.session() as s, pytest.raises(ServiceError) as err:
        add_alias(s, address, destinations)
    assert err.value.code == "invalid" and err.value.field == field and text in err.value.message


def test_duplicate_and_unknown_domain(db, domains):
    with db.session() as s:
        add_alias(s, "sales@example.test", "a@mail.test")
    with db.session() as s, pytest.raises(ServiceError) as err:
        add_alias(s, "SALES@example.test", "b@mail.test")
    assert err.value.code == "exists"
    with db.session() as s, pytest.raises(ServiceError) as err:
        add_alias(s, "sales@unknown.test", "b@mail.test")
    assert err.value.code == "not_found"


def test_owner_scoping_of_aliases(db, domains, owner, other_owner):
    with db.session() as s:
        mine = add_alias(s, "me@example.test", "a@mail.test", actor=owner)
        theirs = add_alias(s, "them@other.test", "b@mail.test", actor=other_owner)
    with db.session() as s:
        assert [a.address for a in list_aliases(s, owner)] == ["me@example.test"]
        assert [a.address for a in list_aliases(s)] == ["me@example.test", "them@other.test"]
        for attempt in (lambda: get_alias(s, theirs.id, owner),
                        lambda: add_alias(s, "new@other.test", "c@mail.test", actor=owner),
                        lambda: update_alias(s, s.merge(theirs), owner, enabled=False),
                        lambda: delete_alias(s, s.merge(theirs), owner)):
            with pytest.raises(ServiceError) as err:
                attempt()
            assert err.value.code == "not_found"
        assert get_alias(s, mine.id, owner).address == "me@example.test"


def test_update_and_delete(db, domains):
    with db.session() as s:
        alias = add_alias(s, "sales@example.test", "a@mail.test")
    with db.session() as s:
        alias = update_alias(s, get_alias(s, alias.id), destinations=["x@mail.test", "y@mail.test"],
                             enabled=False, note="paused")
        assert (alias.destinations, alias.enabled, alias.note) == (["x@mail.test", "y@mail.test"], False, "paused")
        with pytest.raises(ServiceError):
            update_alias(s, alias, destinations="sales@example.test")
    with db.session() as s:
        alias = get_alias(s, alias.id)
        assert alias.destinations == ["x@mail.test", "y@mail.test"] and not alias.enabled
        assert [a.address for a in list_aliases(s, search="ale")] == ["sales@example.test"]
        assert list_aliases(s, search="%") == []
        delete_alias(s, alias)
    with db.session() as s:
        assert list_aliases(s) == []


@pytest.mark.parametrize("typed", [
    "a@mail.test, b@mail.test", "a@mail.test\nb@mail.test", "a@mail.test\r\nb@mail.test\r\n",
    "a@mail.test b@mail.test", " a@mail.test ;  b@mail.test,\n\n", ["a@mail.test", " b@mail.test "],
    "a@mail.test, A@MAIL.TEST\nb@mail.test",
])
def test_destinations_are_read_the_same_whatever_separates_them(typed):
    assert parse_destinations(typed) == ["a@mail.test", "b@mail.test"]
