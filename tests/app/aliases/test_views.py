import re

import pytest
from sqlalchemy import select

from app.services.aliases import DESTINATIONS_HELP, add_alias
from mailferry.models import Alias


def _aliases(db, domain_id):
    with db.session() as s:
        return {a.local_part: a for a in s.query(Alias).filter_by(domain_id=domain_id)}


def test_create_alias_with_several_destinations_and_a_note(owner_browser, owner_domain, db):
    response = owner_browser.post(f"/domains/{owner_domain}/aliases", {
        "address": "Hello", "destinations": "a@gmail.test\nb@outlook.test, c@fastmail.test", "note": "shop contact",
        "enabled": "y"}, csrf_page="/")
    assert response.status_code == 302
    alias = _aliases(db, owner_domain)["hello"]
    assert alias.destinations == ["a@gmail.test", "b@outlook.test", "c@fastmail.test"]
    assert alias.note == "shop contact" and alias.enabled
    html = owner_browser.get(f"/domains/{owner_domain}/aliases").get_data(as_text=True)
    assert "hello@owned.test" in html and "c@fastmail.test" in html and "shop contact" in html


def test_catch_all(owner_browser, owner_domain, db):
    owner_browser.post(f"/domains/{owner_domain}/aliases", {"address": "*", "destinations": "all@gmail.test",
                                                           "enabled": "y"}, csrf_page="/")
    assert _aliases(db, owner_domain)["*"].destinations == ["all@gmail.test"]
    assert "catch-all" in owner_browser.get(f"/domains/{owner_domain}/aliases").get_data(as_text=True)


@pytest.mark.parametrize("data, field", [
    ({"address": "ok", "destinations": "not-an-address"}, "destinations"),
    ({"address": "ok", "destinations": ""}, "destinations"),
    ({"address": "bad local", "destinations": "x@gmail.test"}, "address"),
    ({"address": "loop", "destinations": "loop@owned.test"}, "destinations"),
    ({"address": "dup", "destinations": "x@gmail.test", "note": "n" * 501}, "note"),
])
def test_alias_form_errors_are_shown_next_to_the_field(owner_browser, owner_domain, data, field):
    response = owner_browser.post(f"/domains/{owner_domain}/aliases", data, csrf_page="/")
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)


@pytest.mark.parametrize("data, field", [
    ({"address": "bad\rlocal", "destinations": "x@gmail.test"}, "address"),
    ({"address": "bad\nlocal", "destinations": "x@gmail.test"}, "address"),
    ({"address": "ok", "destinations": "x\r@gmail.test"}, "destinations"),  # LF separates destinations here
    ({"address": "ok", "destinations": "x@gmail.test\rBcc: y@evil.test"}, "destinations"),
    ({"address": "ok", "destinations": "x@gm\x00ail.test"}, "destinations"),
    ({"address": "ok", "destinations": "x@gmail.test", "note": "a\r\nBcc: y@evil.test"}, "note"),
    ({"address": "ok", "destinations": "x@gmail.test", "note": "a\tb"}, "note"),
])
def test_alias_form_refuses_control_characters_next_to_the_field(owner_browser, owner_domain, db, data, field):
    response = owner_browser.post(f"/domains/{owner_domain}/aliases", data, csrf_page="/")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "control characters" in html.split(f'id="{field}-error"')[1][:200]
    assert _aliases(db, owner_domain) == {}


@pytest.mark.parametrize("data, field", [
    ({"destinations": "y\r@gmail.test", "note": "kept"}, "destinations"),
    ({"destinations": "kept@gmail.test", "note": "a\nBcc: y@evil.test"}, "note"),
])
def test_alias_edit_form_refuses_control_characters_next_to_the_field(owner_browser, owner_domain, db, data, field):
    with db.session() as s:
        alias_id = add_alias(s, "kept@owned.test", "kept@gmail.test", note="kept").id
    response = owner_browser.post(f"/aliases/{alias_id}/edit", {**data, "enabled": "y"}, csrf_page="/")
    assert response.status_code == 400
    assert "control characters" in response.get_data(as_text=True).split(f'id="{field}-error"')[1][:200]
    alias = _aliases(db, owner_domain)["kept"]
    assert (alias.destinations, alias.note) == (["kept@gmail.test"], "kept")


def test_duplicate_alias_is_refused(owner_browser, owner_domain, db):
    with db.session() as s:
        add_alias(s, "dup@owned.test", "x@gmail.test")
    response = owner_browser.post(f"/domains/{owner_domain}/aliases", {"address": "dup", "destinations": "y@gmail.test"},
                                  csrf_page="/")
    assert response.status_code == 400 and "already exists" in response.get_data(as_text=True)


def test_edit_toggle_delete(owner_browser, owner_domain, db):
    with db.session() as s:
        alias_id = add_alias(s, "edit@owned.test", "x@gmail.test").id
    form = owner_browser.get(f"/aliases/{alias_id}/edit").get_data(as_text=True)
    assert "x@gmail.test" in form
    response = owner_browser.post(f"/aliases/{alias_id}/edit", {"destinations": "y@gmail.test\nz@gmail.test",
                                                               "note": "changed", "enabled": "y"}, csrf_page="/")
    assert response.status_code == 302
    alias = _aliases(db, owner_domain)["edit"]
    assert alias.destinations == ["y@gmail.test", "z@gmail.test"] and alias.note == "changed"
    owner_browser.post(f"/aliases/{alias_id}/toggle", csrf_page="/")
    assert not _aliases(db, owner_domain)["edit"].enabled
    owner_browser.post(f"/aliases/{alias_id}/toggle", csrf_page="/")
    assert _aliases(db, owner_domain)["edit"].enabled
    owner_browser.post(f"/aliases/{alias_id}/delete", csrf_page="/")
    assert "edit" not in _aliases(db, owner_domain)


def test_a_bad_edit_changes_nothing_and_shows_the_error(owner_browser, owner_domain, db):
    with db.session() as s:
        alias_id = add_alias(s, "keep@owned.test", "x@gmail.test", note="old").id
    response = owner_browser.post(f"/aliases/{alias_id}/edit", {"destinations": "y@gmail.test", "note": "n" * 501},
                                  csrf_page="/")
    assert response.status_code == 400 and 'id="note-error"' in response.get_data(as_text=True)
    alias = _aliases(db, owner_domain)["keep"]
    assert alias.destinations == ["x@gmail.test"] and alias.note == "old" and alias.enabled


def test_counters_are_shown(owner_browser, owner_domain, db):
    with db.session() as s:
        alias = add_alias(s, "count@owned.test", "x@gmail.test")
        alias.forwarded_count, alias.bounced_count = 12, 3
    html = owner_browser.get(f"/domains/{owner_domain}/aliases").get_data(as_text=True)
    row = re.search(r'data-address="count@owned.test">(.*?)</tr>', html, re.S).group(1)
    assert "<td>12</td><td>3</td>" in row


def test_search(owner_browser, owner_domain, db):
    with db.session() as s:
        add_alias(s, "sales@owned.test", "x@gmail.test")
        add_alias(s, "support@owned.test", "x@gmail.test")
    html = owner_browser.get(f"/domains/{owner_domain}/aliases?q=sal").get_data(as_text=True)
    assert "sales@owned.test" in html and "support@owned.test" not in html


def test_another_owner_gets_404_for_my_aliases(other_browser, owner_domain, db):
    with db.session() as s:
        alias_id = add_alias(s, "mine@owned.test", "x@gmail.test").id
    assert other_browser.get(f"/domains/{owner_domain}/aliases").status_code == 404
    assert other_browser.get(f"/aliases/{alias_id}/edit").status_code == 404
    for url, data in ((f"/aliases/{alias_id}/edit", {"destinations": "evil@evil.test"}),
                      (f"/aliases/{alias_id}/toggle", {}), (f"/aliases/{alias_id}/delete", {}),
                      (f"/domains/{owner_domain}/aliases", {"address": "evil", "destinations": "evil@evil.test"})):
        assert other_browser.post(url, data, csrf_page="/").status_code == 404, url
    aliases = _aliases(db, owner_domain)
    assert set(aliases) == {"mine"} and aliases["mine"].destinations == ["x@gmail.test"] and aliases["mine"].enabled


def test_both_alias_forms_read_destinations_alike_and_name_the_bad_one(owner_browser, owner_domain, db):
    typed = "one@gmail.test two@gmail.test,three@gmail.test"
    created = owner_browser.post(f"/domains/{owner_domain}/aliases", {"address": "team", "destinations": typed},
                                 csrf_page="/")
    assert created.status_code == 302
    with db.session() as s:
        alias = s.scalar(select(Alias).where(Alias.local_part == "team"))
        assert alias.destinations == ["one@gmail.test", "two@gmail.test", "three@gmail.test"]
    edited = owner_browser.post(f"/aliases/{alias.id}/edit", {"destinations": "four@gmail.test; five@gmail.test",
                                                              "enabled": "y"}, csrf_page="/")
    assert edited.status_code == 302
    with db.session() as s:
        assert s.get(Alias, alias.id).destinations == ["four@gmail.test", "five@gmail.test"]

    create_page = owner_browser.get(f"/domains/{owner_domain}/aliases").get_data(as_text=True)
    edit_page = owner_browser.get(f"/aliases/{alias.id}/edit").get_data(as_text=True)
    assert DESTINATIONS_HELP in create_page and DESTINATIONS_HELP in edit_page
    for url, data in ((f"/domains/{owner_domain}/aliases", {"address": "x", "destinations": "ok@gmail.test bob@@x.test"}),
                      (f"/aliases/{alias.id}/edit", {"destinations": "ok@gmail.test bob@@x.test", "enabled": "y"})):
        refused = owner_browser.post(url, data, csrf_page="/").get_data(as_text=True)
        error = re.search(r'id="destinations-error">([^<]+)<', refused).group(1)
        assert error == "destination 2 of 2: &#39;bob@@x.test&#39; has an invalid local part", error
