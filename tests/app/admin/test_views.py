import re

import pytest

from mailferry.models import User
from tests.app.web_fixtures import seed_message


def _user(db, email):
    with db.session() as s:
        return s.query(User).filter_by(email=email).one()


@pytest.mark.parametrize("url", ["/admin/users", "/admin/queue", "/admin/server"])
def test_owners_get_404_on_admin_pages(owner_browser, url):
    assert owner_browser.get(url).status_code == 404


def test_owners_cannot_create_or_change_users(owner_browser, other_owner, db):
    assert owner_browser.post("/admin/users", {"email": "x@people.test", "password": "long-enough-1",
                                               "role": "admin"}, csrf_page="/").status_code == 404
    assert owner_browser.post(f"/admin/users/{other_owner.id}", {"role": "admin", "active": "0"},
                              csrf_page="/").status_code == 404
    assert _user(db, "other@people.test").role == "owner" and _user(db, "other@people.test").active


def test_admin_creates_a_user(admin_browser, db):
    response = admin_browser.post("/admin/users", {"email": "Helper@People.test", "password": "long-enough-1",
                                                   "role": "admin"}, csrf_page="/admin/users")
    assert response.status_code == 302
    assert _user(db, "helper@people.test").role == "admin"
    assert 'data-email="helper@people.test"' in admin_browser.get("/admin/users").get_data(as_text=True)


def test_admin_create_user_errors_next_to_the_field(admin_browser):
    response = admin_browser.post("/admin/users", {"email": "admin@people.test", "password": "long-enough-1",
                                                   "role": "owner"}, csrf_page="/admin/users")
    assert response.status_code == 400 and 'id="email-error"' in response.get_data(as_text=True)
    response = admin_browser.post("/admin/users", {"email": "n@people.test", "password": "short", "role": "owner"},
                                  csrf_page="/admin/users")
    assert response.status_code == 400 and 'id="password-error"' in response.get_data(as_text=True)


def test_admin_deactivates_an_owner_who_then_cannot_log_in(admin_browser, web_app, other_owner, db):
    from tests.app.web_fixtures import Browser
    signed_in = Browser(web_app).login("other@people.test", "other-password")
    assert admin_browser.post(f"/admin/users/{other_owner.id}", {"role": "owner", "active": "0"},
                              csrf_page="/admin/users").status_code == 302
    assert not _user(db, "other@people.test").active
    assert signed_in.get("/").status_code == 302  # the open session ends too
    response = Browser(web_app).post("/login", {"email": "other@people.test", "password": "other-password"})
    assert response.status_code == 200 and "Wrong email or password" in response.get_data(as_text=True)


def test_the_last_admin_cannot_demote_themselves(admin_browser, admin, db):
    response = admin_browser.post(f"/admin/users/{admin.id}", {"role": "owner", "active": "1"},
                                  csrf_page="/admin/users")
    assert response.status_code == 400 and "last active admin" in response.get_data(as_text=True)
    assert _user(db, "admin@people.test").role == "admin"


def test_unknown_user_is_404(admin_browser):
    assert admin_browser.post("/admin/users/999999", {"role": "owner", "active": "1"},
                              csrf_page="/admin/users").status_code == 404


def test_queue_page(admin_browser, owner_domain, db, redis_server):
    seed_message(db, "MSG0000000000001", owner_domain, "a@owned.test", ("x@gmail.test",))
    html = admin_browser.get("/admin/queue").get_data(as_text=True)
    assert re.search(r'id="queued">1<', html) and "MSG0000000000001" in html and "0 waiting" in html
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d UTC</a>", html)  # the dashboard's one time format
    assert re.search(r"<b>\d{4}-\d\d-\d\d \d\d:\d\d UTC</b>oldest queued", html)
    assert "Z</" not in html
    redis_server.stop()
    try:
        html = admin_browser.get("/admin/queue").get_data(as_text=True)
    finally:
        redis_server.start()
    assert "Redis is unreachable" in html and re.search(r'id="queued">1<', html)
