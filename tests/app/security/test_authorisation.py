"""The authorisation walk: a second owner tries every route of Flask's URL map, with every method it accepts,
on the first owner's ids. Each answers 403 or 404, nothing of the first owner shows, nothing of theirs changes.

A route the walk does not know (an argument name without ids, or an argument-less endpoint in no class below)
fails the walk: a new route has to say here who may use it.
"""

from dataclasses import dataclass

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer

from tests.app.security.conftest import OwnerWorld, snapshot
from tests.app.security.routes import FORMS, JSON, UncoveredRoute, filled_urls
from tests.app.web_fixtures import Browser, api_for

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Argument-less endpoints, by who may use them.
PUBLIC = {"auth.login", "auth.login_two_factor", "auth.signup", "auth.forgot_password", "auth.reset_password",
          "health.healthz", "health.readyz", "metrics.metrics", "api.openapi", "static"}  # metrics: METRICS_ALLOWED_IPS
OWN_DATA = {"domains.index", "domains.add", "auth.account", "auth.create_token", "stats.overview",
            "auth.two_factor_setup", "auth.two_factor_recovery_codes", "auth.two_factor_disable",
            "api.list_domains", "api.add_domain", "api.overall_stats", "api.list_tokens", "api.create_token",
            "auth.notifications", "api.get_notifications", "api.set_notifications",
            "audit.index", "api.list_audit", "destinations.index", "api.list_destinations"}  # scoped to the caller
ADMIN_ONLY = {"admin.queue", "admin.server", "admin.list_users", "admin.create_user", "messages.failed",
              "api.failed_messages", "api.list_users", "api.create_user"}
LAST = {"auth.logout"}  # walked at the end: it must end the caller's session only
# Public pages whose argument is a signed link (whoever holds it may use it): walked with a link for the first
# owner's mailbox signed with another key, which must be refused (400) and change nothing.
LINK_PAGES = {"destinations.confirm", "destinations.reenable_link", "auth.reset_password"}

@dataclass(frozen=True)
class Step:
    endpoint: str
    method: str
    url: str
    kind: str  # "object" (someone else's ids: 403/404), "admin", "own", "public", "last", "link"


def _candidates(first: OwnerWorld, second: OwnerWorld) -> dict[str, list]:
    """The first owner's ids, and for domain_id also the caller's own domain (combined with the first owner's
    key or message: /domains/<mine>/dkim/<theirs>/activate)."""
    candidates = first.url_args()
    candidates["domain_id"] = candidates["domain_id"] + [second.domain_id]
    candidates["token"] = [URLSafeTimedSerializer("not-the-secret-key-of-this-server-0123456789",
                                                  salt="mailferry-link-confirm-destination").dumps([first.mailbox_id, ""])]
    return candidates


def plan(app: Flask, first: OwnerWorld, second: OwnerWorld) -> list[Step]:
    """Every (route, method, filled URL) to try; raises UncoveredRoute for a route the walk cannot classify."""
    candidates, steps = _candidates(first, second), []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            methods = sorted(rule.methods - IGNORED_METHODS)
            if rule.arguments and rule.endpoint != "static":
                steps += _object_steps(app, rule, methods, candidates, second)
            else:
                kind = _kind(rule.endpoint)
                url = app.url_for(rule.endpoint, filename="style.css") if rule.endpoint == "static" else rule.rule
                steps += [Step(rule.endpoint, method, url, kind) for method in methods]
    return steps


def _kind(endpoint: str) -> str:
    for kind, endpoints in (("public", PUBLIC), ("own", OWN_DATA), ("admin", ADMIN_ONLY), ("last", LAST)):
        if endpoint in endpoints:
            return kind
    raise UncoveredRoute(f"{endpoint} takes no ids: add it to PUBLIC, OWN_DATA, ADMIN_ONLY or LAST")


def _object_steps(app: Flask, rule, methods: list[str], candidates: dict, second: OwnerWorld) -> list[Step]:
    steps = []
    for args, url in filled_urls(app, rule, candidates):
        if args.get("domain_id") == second.domain_id and len(args) == 1:
            continue  # the caller's own domain alone is theirs to use
        kind = "link" if rule.endpoint in LINK_PAGES else "object"
        steps += [Step(rule.endpoint, method, url, kind) for method in methods]
    return steps


def _send(step: Step, browser: Browser, api):
    if step.url.startswith("/api/"):
        return api.client.open(step.url, method=step.method, json=JSON.get(step.endpoint), headers=api.headers)
    if step.method == "GET":
        return browser.get(step.url)
    return browser.post(step.url, FORMS.get(step.endpoint, {}))


def test_a_second_owner_reaches_nothing_of_the_first(web_app, db, first_world, second_world, other_owner):
    before = snapshot(db, first_world)
    first_browser = Browser(web_app).login("owner@people.test", "owner-password")
    browser, api = Browser(web_app).login("other@people.test", "other-password"), api_for(web_app, db, other_owner)
    steps = plan(web_app, first_world, second_world)
    assert {s.kind for s in steps} == {"object", "admin", "own", "public", "last", "link"}
    walked = set()
    for step in sorted(steps, key=lambda s: s.kind == "last"):
        response = _send(step, browser, api)
        body = response.get_data(as_text=True)
        where = (step.method, step.url, response.status_code, body[:300])
        if step.kind in ("object", "admin"):
            assert response.status_code in (403, 404), where
        elif step.kind == "link":
            assert response.status_code == 400, where
        elif step.endpoint == "health.readyz":  # no worker runs here: 503 is its answer, not a failure
            assert response.status_code == 503 and response.get_json()["failed"] == ["workers"], where
        else:
            assert response.status_code < 500, where
        leaked = [name for name, value in first_world.markers().items() if value in body]
        assert not leaked, (leaked, where)
        walked.add((step.endpoint, step.method))
    routes = {(r.endpoint, m) for r in web_app.url_map.iter_rules() for m in r.methods - IGNORED_METHODS}
    assert walked == routes
    assert snapshot(db, first_world) == before
    assert first_browser.get("/").status_code == 200  # the second owner's logout ended only their own session


def test_the_walk_refuses_a_route_it_does_not_know(web_app, first_world, second_world):
    app = Flask("walk")
    app.add_url_rule("/widgets/<int:widget_id>", "widgets.show", lambda widget_id: "")
    with pytest.raises(UncoveredRoute, match="widget_id"):
        plan(app, first_world, second_world)
    app = Flask("walk")
    app.add_url_rule("/export", "exports.all", lambda: "")
    with pytest.raises(UncoveredRoute, match="exports.all"):
        plan(app, first_world, second_world)


def test_the_admin_only_routes_work_for_an_admin(web_app, db, first_world, second_world, admin):
    """The same admin routes work for an admin, so the walk's 403/404 is the role check, not a broken route."""
    browser, api = Browser(web_app).login("admin@people.test", "admin-password"), api_for(web_app, db, admin)
    gets = [s for s in plan(web_app, first_world, second_world) if s.kind == "admin" and s.method == "GET"]
    assert gets
    for step in gets:
        assert _send(step, browser, api).status_code == 200, step
