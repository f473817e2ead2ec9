"""CSRF: every state-changing dashboard route (found from the URL map) refuses a POST without the token or with
another session's token, even from the owner of the object. The JSON API is exempt from CSRF because it takes
only a bearer token, never the session cookie: a cookie alone gets 401 there."""

from flask import Flask

from tests.app.security.conftest import snapshot
from tests.app.security.routes import FORMS, JSON, filled_urls
from tests.app.web_fixtures import CSRF, Browser

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _state_changing(app: Flask, world, api: bool) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) of every state-changing route, filled with the world's own ids."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith("/api/") != api or not rule.methods & STATE_CHANGING:
                continue
            for _args, url in filled_urls(app, rule, world.url_args()):
                found += [(rule.endpoint, method, url) for method in sorted(rule.methods & STATE_CHANGING)]
    return found


def _refused(response) -> bool:
    return response.status_code == 400 and "Reload the page" in response.get_data(as_text=True)


def test_every_dashboard_form_refuses_a_post_without_the_csrf_token(web_app, db, first_world):
    before = snapshot(db, first_world)
    owner = Browser(web_app).login("owner@people.test", "owner-password")
    routes = _state_changing(web_app, first_world, api=False)
    assert {"auth.logout", "domains.delete", "aliases.delete", "quarantine.release"} <= {e for e, _m, _u in routes}
    for endpoint, method, url in routes:
        response = owner.client.open(url, method=method, data=FORMS.get(endpoint, {}))
        assert _refused(response), (method, url, response.status_code)
    assert snapshot(db, first_world) == before
    assert owner.get("/").status_code == 200  # still signed in: the logout without a token did nothing


def test_every_dashboard_form_refuses_another_sessions_token(web_app, db, first_world, other_owner):
    """A token is bound to its session: one an attacker got from their own session does not work in mine."""
    before = snapshot(db, first_world)
    attacker = Browser(web_app).login("other@people.test", "other-password")
    foreign = CSRF.search(attacker.get("/").get_data(as_text=True)).group(1)
    owner = Browser(web_app).login("owner@people.test", "owner-password")
    for endpoint, method, url in _state_changing(web_app, first_world, api=False):
        response = owner.client.open(url, method=method, data={**FORMS.get(endpoint, {}), "csrf_token": foreign})
        assert _refused(response), (method, url, response.status_code)
    assert snapshot(db, first_world) == before


def test_the_api_ignores_the_session_cookie(web_app, db, first_world):
    before = snapshot(db, first_world)
    owner = Browser(web_app).login("owner@people.test", "owner-password")
    routes = _state_changing(web_app, first_world, api=True)
    assert routes
    for endpoint, method, url in routes + [("api.list_domains", "GET", "/api/v1/domains")]:
        response = owner.client.open(url, method=method, json=JSON.get(endpoint))
        assert response.status_code == 401, (method, url, response.status_code)
    assert snapshot(db, first_world) == before
