"""The JSON API refuses CR, LF (alone too) and other control characters with 400 naming the field, and stores
nothing (red team: an LF alone in a domain name or a destination's local part or label got 201)."""

import pytest

from app.services.aliases import add_alias
from mailferry.models import Alias, Domain


def _refused(response, field: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    assert "control characters" in error["message"]


@pytest.mark.parametrize("name", ["x\n.example", "x.exa\rmple", "x\r\n.example", "x\x00.example", "x\t.example"])
def test_domain_name(owner_api, db, name):
    _refused(owner_api("POST", "/domains", {"name": name}), "name")
    with db.session() as s:
        assert s.query(Domain).count() == 0


@pytest.mark.parametrize("body, field", [
    ({"local_part": "bad\nlocal", "destinations": ["a@gmail.test"]}, "local_part"),
    ({"local_part": "bad\x00local", "destinations": ["a@gmail.test"]}, "local_part"),
    ({"local_part": "ok", "destinations": ["a\n@gmail.test"]}, "destinations"),
    ({"local_part": "ok", "destinations": ["a@gmail\n.test"]}, "destinations"),
    ({"local_part": "ok", "destinations": ["a@gmail.test\r\nRCPT TO:<b@evil.test>"]}, "destinations"),
    ({"local_part": "ok", "destinations": ["a@gmail.test"], "note": "x\r\nBcc: b@evil.test"}, "note"),
    ({"local_part": "ok", "destinations": ["a@gmail.test"], "note": "nul\x00"}, "note"),
])
def test_new_alias(owner_api, owner_domain, db, body, field):
    _refused(owner_api("POST", f"/domains/{owner_domain}/aliases", body), field)
    with db.session() as s:
        assert s.query(Alias).count() == 0


@pytest.mark.parametrize("body, field", [
    ({"destinations": ["b\n@gmail.test"]}, "destinations"),
    ({"destinations": ["b@gmail\r.test"]}, "destinations"),
    ({"note": "x\nBcc: b@evil.test"}, "note"),
    ({"note": "tab\there"}, "note"),
])
def test_alias_update(owner_api, owner_domain, db, body, field):
    with db.session() as s:
        alias_id = add_alias(s, "kept@owned.test", "kept@gmail.test", note="kept").id
    _refused(owner_api("PATCH", f"/aliases/{alias_id}", body), field)
    with db.session() as s:
        alias = s.get(Alias, alias_id)
        assert (alias.destinations, alias.note) == (["kept@gmail.test"], "kept")


@pytest.mark.parametrize("path", ["/domains/{d}/aliases?q=a%00b", "/domains/{d}/messages?q=a%0D%0Ab"])
def test_searches_refuse_control_characters_instead_of_failing(owner_api, owner_domain, path):
    """A NUL made PostgreSQL raise (500) inside the search; now it is a 400 about the parameter."""
    _refused(owner_api("GET", path.format(d=owner_domain)), "q")


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/retry"), ("POST", "/give-up")])
def test_a_message_id_with_a_nul_is_not_found(owner_api, method, suffix):
    response = owner_api(method, f"/messages/a%00b{suffix}")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
