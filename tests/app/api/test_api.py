import re

import pytest

from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from mailferry.models import Domain, Message, User
from tests.app.web_fixtures import Api, seed_message


def _error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer mf_nope"}, {"Authorization": "Basic abc"}])
def test_without_a_valid_token_every_route_is_401(web_app, headers):
    response = web_app.test_client().get("/api/v1/domains", headers=headers)
    _error(response, 401, "unauthorized")


def test_unknown_route_is_a_json_404(owner_api):
    _error(owner_api("GET", "/nothing-here"), 404, "not_found")


def test_domains_round_trip(owner_api, db):
    created = owner_api("POST", "/domains", {"name": "Api.Test"}, 201).get_json()["domain"]
    assert created["name"] == "api.test" and created["verified"] is False
    assert [d["name"] for d in owner_api("GET", "/domains", status=200).get_json()["domains"]] == ["api.test"]
    assert owner_api("GET", f"/domains/{created['id']}", status=200).get_json()["domain"]["id"] == created["id"]
    records = owner_api("GET", f"/domains/{created['id']}/records", status=200).get_json()["records"]
    assert [r["check"] for r in records] == ["ownership", "mx", "spf", "dmarc"]
    owner_api("DELETE", f"/domains/{created['id']}", status=204)
    _error(owner_api("GET", f"/domains/{created['id']}"), 404, "not_found")


def test_domain_option_rewrite_from_for_dmarc_reject(owner_api, owner_domain, db):
    assert owner_api("GET", f"/domains/{owner_domain}", status=200).get_json()["domain"][
        "rewrite_from_for_dmarc_reject"] is False
    body = owner_api("PATCH", f"/domains/{owner_domain}", {"rewrite_from_for_dmarc_reject": True}, 200).get_json()
    assert body["domain"]["rewrite_from_for_dmarc_reject"] is True
    with db.session() as s:
        assert s.get(Domain, owner_domain).rewrite_from_for_dmarc_reject
    error = _error(owner_api("PATCH", f"/domains/{owner_domain}", {"rewrite_from_for_dmarc_reject": "yes"}), 400,
                   "invalid")
    assert error["field"] == "rewrite_from_for_dmarc_reject"


def test_validation_errors_name_the_field(owner_api):
    assert _error(owner_api("POST", "/domains", {"name": "not a domain"}), 400, "invalid")["field"] == "name"
    assert _error(owner_api("POST", "/domains", {}), 400, "invalid")["field"] == "name"
    assert _error(owner_api("POST", "/domains", {"name": 5}), 400, "invalid")["field"] == "name"
    _error(owner_api.client.post("/api/v1/domains", data="x", headers=owner_api.headers), 400, "invalid")
    owner_api("POST", "/domains", {"name": "dup.test"}, 201)
    _error(owner_api("POST", "/domains", {"name": "dup.test"}), 409, "exists")


def test_verification(owner_api, good_domain):
    assert owner_api("GET", f"/domains/{good_domain}/verification", status=200).get_json()["verification"] is None
    report = owner_api("POST", f"/domains/{good_domain}/verify", status=200).get_json()["verification"]
    assert report["passed"] and report["verified"]
    assert {c["name"]: c["ok"] for c in report["checks"]} == dict.fromkeys(("ownership", "mx", "spf", "dkim", "dmarc"), True)
    stored = owner_api("GET", f"/domains/{good_domain}/verification", status=200).get_json()["verification"]
    assert stored["passed"]
    _error(owner_api("POST", f"/domains/{good_domain}/verify", {"force": True}), 403, "forbidden")


def test_dkim_keys_never_carry_the_private_key(owner_api, owner_domain):
    first = owner_api("POST", f"/domains/{owner_domain}/dkim", status=201).get_json()["key"]
    second = owner_api("POST", f"/domains/{owner_domain}/dkim", {"algorithm": "ed25519"}, 201).get_json()["key"]
    assert first["active"] and not second["active"]
    assert second["record"]["value"].startswith("v=DKIM1; k=ed25519; p=")
    owner_api("POST", f"/domains/{owner_domain}/dkim/{second['id']}/activate", status=200)
    response = owner_api("GET", f"/domains/{owner_domain}/dkim", status=200)
    keys = response.get_json()["keys"]
    assert [k["id"] for k in keys if k["active"]] == [second["id"]]
    assert "PRIVATE" not in response.get_data(as_text=True) and "private" not in response.get_data(as_text=True)
    _error(owner_api("POST", f"/domains/{owner_domain}/dkim", {"algorithm": "dsa"}), 400, "invalid")


def test_aliases_round_trip(owner_api, owner_domain):
    alias = owner_api("POST", f"/domains/{owner_domain}/aliases", {
        "local_part": "team", "destinations": ["a@gmail.test", "b@gmail.test"], "note": "the team"}, 201).get_json()["alias"]
    assert alias["address"] == "team@owned.test" and alias["destinations"] == ["a@gmail.test", "b@gmail.test"]
    changed = owner_api("PATCH", f"/aliases/{alias['id']}", {"enabled": False, "destinations": ["c@gmail.test"]},
                        status=200).get_json()["alias"]
    assert changed["enabled"] is False and changed["destinations"] == ["c@gmail.test"] and changed["note"] == "the team"
    listed = owner_api("GET", f"/domains/{owner_domain}/aliases", status=200).get_json()["aliases"]
    assert [a["id"] for a in listed] == [alias["id"]]
    catch_all = owner_api("POST", f"/domains/{owner_domain}/aliases",
                          {"local_part": "*", "destinations": ["all@gmail.test"]}, 201).get_json()["alias"]
    assert catch_all["catch_all"]
    err = _error(owner_api("POST", f"/domains/{owner_domain}/aliases", {"local_part": "x", "destinations": ["nope"]}),
                 400, "invalid")
    assert err["field"] == "destinations"
    _error(owner_api("PATCH", f"/aliases/{alias['id']}", {"enabled": "no"}), 400, "invalid")
    owner_api("DELETE", f"/aliases/{alias['id']}", status=204)
    _error(owner_api("GET", f"/aliases/{alias['id']}"), 404, "not_found")


def test_messages_and_stats(owner_api, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    messages = owner_api("GET", f"/domains/{owner_domain}/messages", status=200).get_json()["messages"]
    assert [m["id"] for m in messages] == ["MSG0000000000001"]
    assert messages[0]["deliveries"][0]["state"] == "pending"
    assert owner_api("GET", f"/domains/{owner_domain}/messages?q=nobody", status=200).get_json()["messages"] == []
    _error(owner_api("GET", f"/domains/{owner_domain}/messages?limit=0"), 400, "invalid")
    message = owner_api("GET", "/messages/MSG0000000000001", status=200).get_json()["message"]
    assert message["deliveries"][0]["history"] == []
    assert owner_api("POST", "/messages/MSG0000000000001/retry", status=200).get_json()["enqueued"] is True
    assert owner_api("POST", "/messages/MSG0000000000001/give-up", status=200).get_json()["gave_up"]
    _error(owner_api("POST", "/messages/MSG0000000000001/retry"), 400, "invalid")
    stats = owner_api("GET", f"/domains/{owner_domain}/stats", status=200).get_json()
    assert len(stats["days"]) == 30 and stats["queue"]["total"] == 0 and stats["mx_cache"] is None
    assert stats["delivery"] is None  # system-wide figures: admins only
    assert owner_api("GET", "/stats", status=200).get_json()["delivery"] is None
    assert len(owner_api("GET", "/stats", status=200).get_json()["days"]) == 30


def test_failed_queue_is_admin_only(owner_api, admin_api, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "hi@owned.test", ("a@gmail.test",))
    with db.session() as s:
        delivery = s.get(Message, "MSG0000000000001").deliveries[0]
        delivery.state, delivery.last_code, delivery.last_reply = "bounced", 550, "5.1.1 unknown"
    _error(owner_api("GET", "/admin/failed"), 403, "forbidden")
    _error(owner_api("POST", "/admin/failed/MSG0000000000001/requeue"), 403, "forbidden")
    body = admin_api("GET", "/admin/failed", status=200).get_json()
    assert body["failed"] == [] and [b["message_id"] for b in body["bounced"]] == ["MSG0000000000001"]
    requeued = admin_api("POST", "/admin/failed/MSG0000000000001/requeue", status=200).get_json()
    assert requeued["reopened"] == [delivery.id] and requeued["enqueued"] is True
    _error(admin_api("POST", "/admin/failed/NOSUCHMESSAGE/requeue"), 404, "not_found")
    overall = admin_api("GET", "/stats", status=200).get_json()
    assert overall["mx_cache"] is not None
    assert overall["delivery"]["mode"] == "direct" and overall["delivery"]["days"] == 30


def test_another_owner_gets_404_for_every_id_of_mine(owner, other_api, owner_domain, db, app_settings):
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        key = generate_key(s, domain, app_settings.SECRET_KEY)
        alias = add_alias(s, "mine@owned.test", "x@gmail.test")
    seed_message(db, "MSG0000000000001", owner_domain, "mine@owned.test", ("x@gmail.test",))
    d, k, a, m = owner_domain, key.id, alias.id, "MSG0000000000001"
    for method, path, body in [
        ("GET", f"/domains/{d}", None), ("DELETE", f"/domains/{d}", None),
        ("PATCH", f"/domains/{d}", {"rewrite_from_for_dmarc_reject": True}), ("GET", f"/domains/{d}/records", None),
        ("GET", f"/domains/{d}/verification", None), ("POST", f"/domains/{d}/verify", None),
        ("GET", f"/domains/{d}/dkim", None), ("POST", f"/domains/{d}/dkim", None),
        ("POST", f"/domains/{d}/dkim/{k}/activate", None), ("GET", f"/domains/{d}/aliases", None),
        ("POST", f"/domains/{d}/aliases", {"local_part": "evil", "destinations": ["e@evil.test"]}),
        ("GET", f"/aliases/{a}", None), ("PATCH", f"/aliases/{a}", {"enabled": False}), ("DELETE", f"/aliases/{a}", None),
        ("GET", f"/domains/{d}/messages", None), ("GET", f"/messages/{m}", None), ("POST", f"/messages/{m}/retry", None),
        ("POST", f"/messages/{m}/give-up", None), ("GET", f"/domains/{d}/stats", None),
    ]:
        _error(other_api(method, path, body), 404, "not_found")
    assert other_api("GET", "/domains", status=200).get_json()["domains"] == []
    with db.session() as s:
        domain = s.get(Domain, owner_domain)
        assert domain is not None and len(domain.aliases) == 1 and domain.aliases[0].enabled
        assert not domain.rewrite_from_for_dmarc_reject


def test_admin_sees_other_owners_domains(admin_api, owner_domain):
    assert [d["id"] for d in admin_api("GET", "/domains", status=200).get_json()["domains"]] == [owner_domain]


def test_openapi_document_matches_the_registered_routes(web_app):
    document = Api(web_app, None)("GET", "/openapi.json", status=200).get_json()
    assert document["openapi"].startswith("3.") and document["servers"] == [{"url": "/api/v1"}]
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    registered = set()
    for rule in web_app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
            registered |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == registered
    for path, ops in document["paths"].items():
        params = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, (path, declared)


def test_token_records_last_use(owner_api, owner, db):
    owner_api("GET", "/domains", status=200)
    from app.services.tokens import list_tokens
    with db.session() as s:
        assert list_tokens(s, s.get(User, owner.id))[0].last_used_at is not None


def test_owner_cannot_add_domain_for_someone_else_via_api(owner_api, other_owner, db):
    owner_api("POST", "/domains", {"name": "mine-only.test", "owner": "other@people.test"}, 201)
    with db.session() as s:
        # the API has no owner field: the domain belongs to the token's user
        assert s.query(Domain).filter_by(name="mine-only.test").one().owner.email == "owner@people.test"


def test_users_are_managed_by_admins_only(owner_api, admin_api, owner, admin, db):
    _error(owner_api("GET", "/users"), 403, "forbidden")
    _error(owner_api("POST", "/users", {"email": "x@people.test", "password": "long-enough-1", "role": "admin"}),
           403, "forbidden")
    _error(owner_api("PATCH", f"/users/{owner.id}", {"role": "admin"}), 403, "forbidden")
    created = admin_api("POST", "/users", {"email": "New@People.test", "password": "long-enough-1"}, 201).get_json()
    assert created["user"]["email"] == "new@people.test" and created["user"]["role"] == "owner"
    assert "password" not in str(created)
    emails = [u["email"] for u in admin_api("GET", "/users", status=200).get_json()["users"]]
    assert "new@people.test" in emails and "owner@people.test" in emails
    changed = admin_api("PATCH", f"/users/{owner.id}", {"active": False}, status=200).get_json()["user"]
    assert changed["active"] is False
    _error(owner_api("GET", "/domains"), 401, "unauthorized")  # a deactivated owner's token stops working
    _error(admin_api("PATCH", f"/users/{admin.id}", {"role": "owner"}), 400, "invalid")  # the last admin
    _error(admin_api("PATCH", "/users/999999", {"active": True}), 404, "not_found")
    _error(admin_api("POST", "/users", {"email": "new@people.test", "password": "long-enough-1"}), 409, "exists")
