"""CR, LF (alone too), NUL, TAB and the other control characters are refused in every field that reaches a
header or an SMTP command, in the service layer that the dashboard, the API and the CLI all call."""

import pytest
from sqlalchemy import func, select

from app.services.aliases import add_alias, update_alias
from app.services.domains import add_domain
from app.services.errors import INVALID, ServiceError
from app.services.tokens import create_token
from app.services.users import create_user
from mailferry.models import Alias, ApiToken, Domain, User

# what a header or command injection needs (CR, LF, CRLF), and the controls that mean nothing in these fields
CONTROLS = ["\n", "\r", "\r\n", "\x00", "\t", "\x0b", "\x1b", "\x7f", "\x85", "\u2028"]


@pytest.fixture
def domain_id(db, owner):
    with db.session() as s:
        return add_domain(s, "example.test", owner).id


@pytest.fixture
def alias_id(db, domain_id):
    with db.session() as s:
        return add_alias(s, "kept@example.test", "kept@gmail.test", note="kept").id


def _refused(call, field: str) -> None:
    with pytest.raises(ServiceError) as info:
        call()
    assert (info.value.code, info.value.field) == (INVALID, field)
    assert "must not contain line breaks or other control characters" in info.value.message


def _count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("char", CONTROLS)
def test_domain_name(db, owner, char):
    with db.session() as s:
        _refused(lambda: add_domain(s, f"x{char}.example", s.get(User, owner.id)), "name")
        _refused(lambda: add_domain(s, f"x.exam{char}ple", s.get(User, owner.id)), "name")
    assert _count(db, Domain) == 0


@pytest.mark.parametrize("char", CONTROLS)
@pytest.mark.parametrize("address, destination, field", [
    ("bad{c}local@example.test", "a@gmail.test", "address"),
    ("bad{c}@example.test", "a@gmail.test", "address"),
    ("ok@example.test", "a{c}@gmail.test", "destinations"),  # the destination's local part
    ("ok@example.test", "a@gmail{c}.test", "destinations"),  # a label of its domain
    ("ok@example.test", "a@gmail.test{c}Bcc: b@evil.test", "destinations"),
])
def test_alias_address_and_destinations(db, domain_id, char, address, destination, field):
    with db.session() as s:
        _refused(lambda: add_alias(s, address.format(c=char), [destination.format(c=char)]), field)
    assert _count(db, Alias) == 0


@pytest.mark.parametrize("char", CONTROLS)
def test_alias_note_and_updates(db, alias_id, char):
    with db.session() as s:
        _refused(lambda: add_alias(s, "new@example.test", "a@gmail.test", note=f"line{char}Bcc: x@evil.test"), "note")
        alias = s.get(Alias, alias_id)
        _refused(lambda: update_alias(s, alias, note=f"a{char}b"), "note")
        _refused(lambda: update_alias(s, alias, destinations=[f"b{char}@gmail.test"]), "destinations")
    with db.session() as s:
        alias = s.get(Alias, alias_id)
        assert (alias.note, alias.destinations) == ("kept", ["kept@gmail.test"])
    assert _count(db, Alias) == 1


@pytest.mark.parametrize("char", CONTROLS)
def test_account_email_and_token_name(db, owner, char):
    with db.session() as s:
        _refused(lambda: create_user(s, f"new{char}user@people.test", "a-good-password"), "email")
        _refused(lambda: create_token(s, s.get(User, owner.id), f"ci{char}token"), "name")
    assert _count(db, User) == 1 and _count(db, ApiToken) == 0


def test_surrounding_whitespace_is_trimmed_not_stored(db, domain_id):
    """A pasted value ending in a newline is trimmed (nothing of it is stored), not refused."""
    with db.session() as s:
        alias = add_alias(s, " trim@example.test\r\n", ["\ta@gmail.test\n"], note="note\r\n")
        assert (alias.address, alias.destinations, alias.note) == ("trim@example.test", ["a@gmail.test"], "note")
