"""What an event says: an alias change names what changed, before and after; a secret (token, password) is
never in a row, on the page or in the API."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.services import audit
from app.services.domains import add_domain
from mailferry.models import AuditEvent, Domain, User
from tests.app.audit.conftest import Scene
from tests.app.web_fixtures import Browser

NEW_SECRET = re.compile(r"\bmf_[A-Za-z0-9_-]{20,}")


def test_an_alias_change_records_destinations_and_state_before_and_after(scene: Scene):
    assert scene.owner.post(f"/aliases/{scene.alias_id}/edit", {
        "destinations": "me@dest.test\nyou@dest.test", "note": "first note"},
        csrf_page="/").status_code == 302
    event = scene.events(audit.ALIAS_CHANGED)[0]
    assert event.details == {"address": "hello@owned.test",
                             "destinations": {"before": ["me@dest.test"], "after": ["me@dest.test", "you@dest.test"]},
                             "enabled": {"before": True, "after": False}}
    assert event.object_type == "alias" and event.object_id == str(scene.alias_id)
    # saving without a change records nothing
    before = len(scene.events(audit.ALIAS_CHANGED))
    scene.owner_api("PATCH", f"/aliases/{scene.alias_id}", {"enabled": False}, status=200)
    assert len(scene.events(audit.ALIAS_CHANGED)) == before


def test_a_user_change_records_role_and_state(scene: Scene):
    scene.admin_api("PATCH", f"/users/{scene.owner_id}", {"role": "admin", "active": False}, status=200)
    event = scene.events(audit.USER_CHANGED)[0]
    assert event.details == {"role": {"before": "owner", "after": "admin"},
                             "active": {"before": True, "after": False}}
    assert event.actor_id == scene.admin_id and event.owner_id == scene.owner_id


def test_the_second_factor_views_record_through_record_user_event(db, owner):
    """The function the two-factor views call: the event is the account's, acted by its user."""
    with db.session() as s:
        event = audit.record_user_event(s, audit.TWO_FACTOR_ENABLED, s.get(User, owner.id), ip="192.0.2.7")
    assert (event.action, event.actor, event.actor_id, event.owner_id, event.ip) == (
        "2fa_enabled", "owner@people.test", owner.id, owner.id, "192.0.2.7")


def _every_row_as_text(db) -> str:
    with db.session() as s:
        return "\n".join(" ".join(repr(getattr(e, c.key)) for c in AuditEvent.__mapper__.columns)
                         for e in s.scalars(select(AuditEvent)))


def test_no_secret_is_ever_in_the_audit_log(scene: Scene, web_app):
    passwords = ["owner-password", "owner-password-Nq81", "wrong-password-Xk27", "signup-password-Vb44",
                 "admin-made-password-Hr93", "api-made-password-Lz51", "cli-made-password-Tw06"]
    created = scene.owner.post("/account/tokens", {"token-name": "ci"}, csrf_page="/account",
                               follow_redirects=True).get_data(as_text=True)
    secrets = set(NEW_SECRET.findall(created)) | {scene.owner_api.headers["Authorization"].split()[1],
                                                  scene.admin_api.headers["Authorization"].split()[1]}
    assert len(secrets) == 3
    scene.owner.post("/account", {"pw-old_password": passwords[0], "pw-new_password": passwords[1],
                                  "pw-confirm": passwords[1]}, csrf_page="/account")
    Browser(web_app).post("/login", {"email": "owner@people.test", "password": passwords[2]})
    Browser(web_app).post("/signup", {"email": "new@people.test", "password": passwords[3],
                                      "confirm": passwords[3]}, csrf_page="/signup")
    scene.admin.post("/admin/users", {"email": "made@people.test", "password": passwords[4], "role": "owner"})
    scene.admin_api("POST", "/users", {"email": "api@people.test", "password": passwords[5]}, status=201)
    scene.cli("create-admin", "--email", "cli@people.test", "--password", passwords[6])
    shown = [scene.admin_api("GET", "/audit?limit=200", status=200).get_data(as_text=True)]
    for token_id in range(1, 4):  # every token, the admin's own last
        scene.admin.post(f"/account/tokens/{token_id}/revoke", csrf_page="/account")
    shown += [scene.admin.get("/audit?action=" + a).get_data(as_text=True) for a in ("", "token_created")]
    rows = _every_row_as_text(scene.db)
    assert {audit.TOKEN_CREATED, audit.TOKEN_REVOKED, audit.PASSWORD_CHANGED, audit.LOGIN_FAILED,
            audit.USER_CREATED} <= {e.action for e in scene.events()}
    assert len(scene.events(audit.TOKEN_REVOKED)) == 3
    for secret in [*secrets, *passwords]:
        assert secret not in rows, secret
        assert not [page for page in shown if secret in page], secret


def test_the_event_commits_or_rolls_back_with_its_change(db, owner):
    class Abandoned(Exception):
        pass

    try:
        with db.session() as s:
            add_domain(s, "abandoned.test", s.get(User, owner.id))
            raise Abandoned
    except Abandoned:
        pass
    with db.session() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == audit.DOMAIN_ADDED)) == 0
        assert s.scalar(select(func.count()).select_from(Domain)) == 0
        add_domain(s, "kept.test", s.get(User, owner.id))
    with db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == audit.DOMAIN_ADDED))
        assert [e.summary for e in events] == ["domain kept.test added"]
