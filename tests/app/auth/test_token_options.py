"""The account page's token form: an expiry (never / 30 / 90 / 365 days) and a read-only scope, listed."""

from datetime import timedelta

import pytest

from mailferry.models import ApiToken, utcnow


def _created(db) -> ApiToken:
    with db.session() as s:
        return s.query(ApiToken).one()


def test_a_read_only_token_expiring_in_90_days(owner_browser, db, web_app):
    response = owner_browser.post("/account/tokens", {"token-name": "reader", "token-expires": "90",
                                                      "token-read_only": "y"}, csrf_page="/account",
                                  follow_redirects=True)
    assert response.status_code == 200
    secret = response.get_data(as_text=True).split('id="new-token"')[1].split('data-copy="')[1].split('"')[0]
    token = _created(db)
    assert token.read_only and timedelta(days=89, hours=23) < token.expires_at - utcnow() <= timedelta(days=90)
    row = owner_browser.get("/account").get_data(as_text=True).split('<tr class="token">')[1].split("</tr>")[0]
    assert "read-only" in row and token.expires_at.strftime("%Y-%m-%d %H:%M") in row
    api = web_app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/domains", headers=headers).status_code == 200
    assert api.post("/api/v1/domains", json={"name": "ro.test"}, headers=headers).status_code == 403


def test_by_default_a_token_never_expires_and_may_write(owner_browser, db):
    assert owner_browser.post("/account/tokens", {"token-name": "ci"}, csrf_page="/account").status_code == 302
    token = _created(db)
    assert token.expires_at is None and not token.read_only
    row = owner_browser.get("/account").get_data(as_text=True).split('<tr class="token">')[1].split("</tr>")[0]
    assert "never" in row and "read and write" in row


@pytest.mark.parametrize("expires", ["7", "abc", "-30"])
def test_an_expiry_not_offered_is_refused(owner_browser, db, expires):
    response = owner_browser.post("/account/tokens", {"token-name": "ci", "token-expires": expires},
                                  csrf_page="/account")
    assert response.status_code == 400 and 'id="token-expires-error"' in response.get_data(as_text=True)
    with db.session() as s:
        assert s.query(ApiToken).count() == 0
