"""API tokens: a read-only token reads and is refused everything else (403), an expired one is refused (401),
and the tokens endpoints make tokens that cannot outlive the token that made them."""

from datetime import timedelta

import pytest

from app.services.tokens import create_token
from mailferry.models import ApiToken, Domain, User, utcnow
from tests.app.web_fixtures import Api


def _token(web_app, db, user, **options) -> tuple[Api, int]:
    with db.session() as s:
        token, secret = create_token(s, s.get(User, user.id), "scoped", **options)
    return Api(web_app, secret), token.id


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()["error"]
    assert body["code"] == code
    return body["message"]


def test_a_read_only_token_can_get_and_is_refused_on_post_put_patch_delete(web_app, db, owner, owner_domain):
    api, _id = _token(web_app, db, owner, read_only=True)
    assert [d["id"] for d in api("GET", "/domains", status=200).get_json()["domains"]] == [owner_domain]
    assert api.client.head("/api/v1/domains", headers=api.headers).status_code == 200
    api("GET", f"/domains/{owner_domain}", status=200)
    # No API route takes PUT: Flask's router answers 405 before any token check.
    assert api("PUT", f"/domains/{owner_domain}", {}).status_code == 405
    attempts = [("POST", "/domains", {"name": "ro.test"}), ("PATCH", f"/domains/{owner_domain}", {"spam_action": "reject"}),
                ("DELETE", f"/domains/{owner_domain}", None), ("POST", "/tokens", {"name": "escalate"})]
    for method, path, body in attempts:
        message = _error(api(method, path, body), 403, "read_only")
        assert "read-only" in message and method in message
    with db.session() as s:
        assert s.get(Domain, owner_domain).spam_action is None and s.query(ApiToken).count() == 1  # nothing changed


def test_an_expired_token_is_refused_with_expired(web_app, db, owner):
    api, token_id = _token(web_app, db, owner, expires_in_days=30)
    api("GET", "/domains", status=200)
    with db.session() as s:
        s.get(ApiToken, token_id).expires_at = utcnow() - timedelta(minutes=1)
    assert "expired" in _error(api("GET", "/domains"), 401, "expired")
    assert "expired" in _error(api("POST", "/domains", {"name": "late.test"}), 401, "expired")


def test_tokens_endpoints_create_list_and_revoke(owner_api, web_app, db, owner):
    created = owner_api("POST", "/tokens", {"name": "ci", "expires_in_days": 90, "read_only": True}, 201).get_json()
    token = created["token"]
    assert token["secret"].startswith("mf_") and token["read_only"] is True and token["expires_at"].endswith("Z")
    listed = owner_api("GET", "/tokens", status=200).get_json()["tokens"]
    assert {t["name"] for t in listed} == {"test", "ci"} and not any("secret" in t for t in listed)
    reader = Api(web_app, token["secret"])
    reader("GET", "/domains", status=200)
    _error(reader("DELETE", f"/tokens/{token['id']}"), 403, "read_only")
    owner_api("DELETE", f"/tokens/{token['id']}", status=204)
    _error(reader("GET", "/domains"), 401, "unauthorized")


@pytest.mark.parametrize("body", [{"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": 400},
                                  {"name": "x", "expires_in_days": "30"}, {"name": "x", "read_only": "yes"}, {}])
def test_tokens_endpoint_refuses_bad_input(owner_api, body):
    assert owner_api("POST", "/tokens", body).status_code == 400


def test_a_token_made_with_an_expiring_token_expires_no_later(web_app, db, owner):
    api, _id = _token(web_app, db, owner, expires_in_days=30)
    for body in ({"name": "forever"}, {"name": "longer", "expires_in_days": 90}):
        assert "no later" in _error(api("POST", "/tokens", body), 400, "invalid")
    assert api("POST", "/tokens", {"name": "shorter", "expires_in_days": 7}, 201).get_json()["token"]["expires_at"]
