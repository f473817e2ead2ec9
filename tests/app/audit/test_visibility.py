"""Owners see the events of their own account and objects, on the page and in the API; admins and the CLI see
every event; newest first, paged, filtered by action."""

from __future__ import annotations

from app.services import audit
from tests.app.web_fixtures import Browser, api_for


def _each_owner_acts(web_app, db, owner, other_owner):
    mine, theirs = Browser(web_app).login("owner@people.test", "owner-password"), api_for(web_app, db, other_owner)
    assert mine.post("/domains", {"name": "mine-secretly.test"}, csrf_page="/").status_code == 302
    theirs("POST", "/domains", {"name": "theirs-secretly.test"}, status=201)
    failed = Browser(web_app).post("/login", {"email": "other@people.test", "password": "guessed-wrong"})
    assert failed.status_code == 200
    return mine, theirs


def test_an_owner_sees_only_their_own_events(web_app, db, owner, other_owner):
    mine, theirs = _each_owner_acts(web_app, db, owner, other_owner)
    page = mine.get("/audit").get_data(as_text=True)
    assert "mine-secretly.test" in page and "owner@people.test signed in" in page
    assert "theirs-secretly.test" not in page and "other@people.test" not in page
    events = theirs("GET", "/audit", status=200).get_json()["events"]
    assert {e["owner_id"] for e in events} == {other_owner.id}
    summaries = " ".join(e["summary"] for e in events)
    assert "theirs-secretly.test" in summaries and "failed login as other@people.test" in summaries
    assert "mine-secretly.test" not in summaries and "owner@people.test" not in summaries


def test_admins_and_the_cli_see_every_event(web_app, db, owner, other_owner, admin):
    _each_owner_acts(web_app, db, owner, other_owner)
    Browser(web_app).post("/login", {"email": "nobody@people.test", "password": "whatever-it-is"})
    page = Browser(web_app).login("admin@people.test", "admin-password").get("/audit").get_data(as_text=True)
    for text in ("mine-secretly.test", "theirs-secretly.test", "failed login as nobody@people.test"):
        assert text in page
    api = api_for(web_app, db, admin)
    owners = {e["owner_id"] for e in api("GET", "/audit?limit=200", status=200).get_json()["events"]}
    assert {owner.id, other_owner.id, None} <= owners
    listed = web_app.test_cli_runner().invoke(args=["audit", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert "theirs-secretly.test" in listed.output and "mine-secretly.test" in listed.output


def test_newest_first_paged_and_filtered(web_app, db, owner):
    api = api_for(web_app, db, owner)
    for n in range(5):
        api("POST", "/domains", {"name": f"page{n}.test"}, status=201)
    first = api("GET", "/audit?action=domain_added&limit=2", status=200).get_json()
    assert [e["summary"] for e in first["events"]] == ["domain page4.test added", "domain page3.test added"]
    seen = [e["id"] for e in first["events"]]
    cursor = first["next_before"]
    while cursor:
        body = api("GET", f"/audit?action=domain_added&limit=2&before={cursor}", status=200).get_json()
        seen += [e["id"] for e in body["events"]]
        cursor = body["next_before"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    tokens = api("GET", "/audit?action=token_created", status=200).get_json()["events"]
    assert [e["action"] for e in tokens] == ["token_created"]
    assert api("GET", "/audit?action=nonsense", status=400).get_json()["error"]["field"] == "action"
    assert api("GET", "/audit?before=x", status=400).get_json()["error"]["field"] == "before"
    browser = Browser(web_app).login("owner@people.test", "owner-password")
    html = browser.get("/audit?action=domain_added").get_data(as_text=True)
    assert html.count('data-action="domain_added"') == 5 and 'data-action="login"' not in html
    assert browser.get("/audit?action=nonsense").status_code == 400


def test_the_page_pages_with_an_older_link(web_app, db, owner):
    with db.session() as s:
        for n in range(60):
            audit.record(s, audit.ALIAS_CREATED, actor=audit.CLI, owner_id=owner.id, object_type="alias",
                         object_id=n, summary=f"alias number-{n}@x.test created")
    browser = Browser(web_app).login("owner@people.test", "owner-password")
    first = browser.get("/audit?action=alias_created").get_data(as_text=True)
    assert "number-59@" in first and "number-9@" not in first
    older = first.split('class="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = browser.get(older).get_data(as_text=True)
    assert "number-9@" in second and "number-59@" not in second
