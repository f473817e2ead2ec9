"""Every audited action, from each place it can be taken (dashboard, API, CLI), writes exactly one event naming
who did it, whose object it is and where the request came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from app.services import audit
from app.services.password_reset import make_link
from mailferry.crypto import TOTP, decrypt
from mailferry.models import ApiToken, DkimKey, User
from tests.app.audit.conftest import WEB_IP, Scene
from tests.app.auth.test_two_factor import code, code_step, enrol, password_step, wrong
from tests.app.web_fixtures import Browser


def web(browser: Browser, url: str, data: dict | None = None, page: str = "/", status: int = 302) -> None:
    response = browser.post(url, data or {}, csrf_page=page)
    assert response.status_code == status, (url, response.status_code, response.get_data(as_text=True)[:500])


def _owner_token(sc: Scene) -> int:
    with sc.db.session() as s:
        return s.scalar(select(ApiToken.id).where(ApiToken.user_id == sc.owner_id).order_by(ApiToken.id.desc()))


def _selector(sc: Scene, key_id: int) -> str:
    with sc.db.session() as s:
        return s.get(DkimKey, key_id).selector


def _reset_by_link(sc: Scene) -> None:
    with sc.db.session() as s:
        link = make_link(sc.settings, s.get(User, sc.owner_id))
    path = link[link.index("/login/reset/"):]
    web(Browser(sc.owner.app), path, {"new_password": "owner-password-3", "confirm": "owner-password-3"}, page=path)


def _sign_up(sc: Scene) -> None:
    web(Browser(sc.owner.app), "/signup", {"email": "new@people.test", "password": "new-password",
                                           "confirm": "new-password"}, page="/signup")


def _enrolled(sc: Scene) -> tuple[Browser, str, list[str]]:
    """The owner with 2FA on (through the service) and a browser signed in with password and code."""
    secret, codes = enrol(sc.db, sc.settings, sc.owner_user)
    browser = Browser(sc.owner.app)
    password_step(browser)
    assert code_step(browser, code(secret, 0)).status_code == 302
    return browser, secret, codes


def _enable_on_the_page(sc: Scene) -> None:
    assert sc.owner.get("/account/2fa").status_code == 200  # the pending secret
    with sc.db.session() as s:
        secret = decrypt(sc.settings.SECRET_KEY, s.get(User, sc.owner_id).totp_secret_enc, TOTP).decode()
    response = sc.owner.post("/account/2fa", {"code": code(secret)}, csrf_page="/account/2fa")
    assert response.status_code == 200 and "recovery" in response.get_data(as_text=True).lower()


def _regenerate(sc: Scene) -> None:
    browser, secret, _ = _enrolled(sc)
    web(browser, "/account/2fa/recovery-codes", {"tfr-code": code(secret, 1)}, page="/account", status=200)


def _disable(sc: Scene) -> None:
    browser, _secret, codes = _enrolled(sc)
    web(browser, "/account/2fa/disable", {"tfd-password": "owner-password", "tfd-code": codes[0]}, page="/account")


def _wrong_second_factor(sc: Scene) -> None:
    secret, _ = enrol(sc.db, sc.settings, sc.owner_user)
    browser = Browser(sc.owner.app)
    password_step(browser)
    assert code_step(browser, wrong(secret)).status_code == 400


def _login_with_code(sc: Scene) -> None:
    _enrolled(sc)


@dataclass(frozen=True)
class Case:
    action: str
    via: str  # web, api or cli
    run: Callable[[Scene], object]
    actor: str  # owner, admin, cli, signup or anonymous
    owner: str | None = "owner"  # whose event it is: owner, admin, new (new@people.test) or None (admins only)

    def __str__(self) -> str:
        return f"{self.action}-{self.via}-{self.actor}"


CASES = [
    Case(audit.LOGIN, "web", lambda sc: Browser(sc.owner.app).login("owner@people.test", "owner-password"), "owner"),
    Case(audit.LOGIN, "web", _login_with_code, "owner"),
    Case(audit.LOGIN_2FA_FAILED, "web", _wrong_second_factor, "anonymous"),
    Case(audit.TWO_FACTOR_ENABLED, "web", _enable_on_the_page, "owner"),
    Case(audit.RECOVERY_CODES_REGENERATED, "web", _regenerate, "owner"),
    Case(audit.TWO_FACTOR_DISABLED, "web", _disable, "owner"),
    Case(audit.TWO_FACTOR_DISABLED, "cli", lambda sc: (enrol(sc.db, sc.settings, sc.owner_user),
                                                       sc.cli("reset-2fa", "--email", "owner@people.test")), "cli"),
    Case(audit.LOGIN_FAILED, "web", lambda sc: web(Browser(sc.owner.app), "/login", {
        "email": "owner@people.test", "password": "wrong-password"}, page="/login", status=200), "anonymous"),
    Case(audit.LOGIN_FAILED, "web", lambda sc: web(Browser(sc.owner.app), "/login", {
        "email": "nobody@people.test", "password": "wrong-password"}, page="/login", status=200), "anonymous", None),
    Case(audit.PASSWORD_CHANGED, "web", lambda sc: web(sc.owner, "/account", {
        "pw-old_password": "owner-password", "pw-new_password": "owner-password-2",
        "pw-confirm": "owner-password-2"}, page="/account"), "owner"),
    Case(audit.PASSWORD_RESET, "web", lambda sc: _reset_by_link(sc), "owner"),
    Case(audit.USER_CREATED, "web", _sign_up, "signup", "new"),
    Case(audit.USER_CREATED, "web", lambda sc: web(sc.admin, "/admin/users", {
        "email": "new@people.test", "password": "new-password", "role": "owner"}), "admin", "new"),
    Case(audit.USER_CREATED, "api", lambda sc: sc.admin_api("POST", "/users", {
        "email": "new@people.test", "password": "new-password"}, status=201), "admin", "new"),
    Case(audit.USER_CREATED, "cli", lambda sc: sc.cli("create-admin", "--email", "new@people.test",
                                                      "--password", "new-password"), "cli", "new"),
    Case(audit.USER_CHANGED, "web", lambda sc: web(sc.admin, f"/admin/users/{sc.owner_id}", {
        "role": "owner", "active": "0"}), "admin"),
    Case(audit.USER_CHANGED, "api", lambda sc: sc.admin_api("PATCH", f"/users/{sc.owner_id}", {"role": "admin"},
                                                            status=200), "admin"),
    Case(audit.TOKEN_CREATED, "web", lambda sc: web(sc.owner, "/account/tokens", {"token-name": "ci"},
                                                    page="/account"), "owner"),
    Case(audit.TOKEN_REVOKED, "web", lambda sc: web(sc.owner, f"/account/tokens/{_owner_token(sc)}/revoke",
                                                    page="/account"), "owner"),
    Case(audit.DOMAIN_ADDED, "web", lambda sc: web(sc.owner, "/domains", {"name": "new.test"}), "owner"),
    Case(audit.DOMAIN_ADDED, "api", lambda sc: sc.owner_api("POST", "/domains", {"name": "new.test"}, status=201),
         "owner"),
    Case(audit.DOMAIN_ADDED, "cli", lambda sc: sc.cli("domains", "add", "new.test", "--owner", "owner@people.test"),
         "cli"),
    Case(audit.DOMAIN_DELETED, "web", lambda sc: web(sc.owner, f"/domains/{sc.domain_id}/delete",
                                                                    {"confirm_name": "owned.test"}), "owner"),
    Case(audit.DOMAIN_DELETED, "api", lambda sc: sc.owner_api("DELETE", f"/domains/{sc.domain_id}", status=204),
         "owner"),
    Case(audit.DKIM_KEY_GENERATED, "web", lambda sc: web(sc.owner, f"/domains/{sc.domain_id}/dkim",
                                                         {"algorithm": "ed25519"}), "owner"),
    Case(audit.DKIM_KEY_GENERATED, "api", lambda sc: sc.owner_api("POST", f"/domains/{sc.domain_id}/dkim",
                                                                  {"algorithm": "ed25519"}, status=201), "owner"),
    Case(audit.DKIM_KEY_GENERATED, "cli", lambda sc: sc.cli("dkim", "generate", "owned.test", "--algorithm",
                                                            "ed25519"), "cli"),
    Case(audit.DKIM_KEY_ACTIVATED, "web", lambda sc: web(
        sc.owner, f"/domains/{sc.domain_id}/dkim/{sc.key_ids[1]}/activate"), "owner"),
    Case(audit.DKIM_KEY_ACTIVATED, "api", lambda sc: sc.owner_api(
        "POST", f"/domains/{sc.domain_id}/dkim/{sc.key_ids[1]}/activate", status=200), "owner"),
    Case(audit.DKIM_KEY_ACTIVATED, "cli", lambda sc: sc.cli("dkim", "activate", "owned.test",
                                                            _selector(sc, sc.key_ids[1])), "cli"),
    Case(audit.ALIAS_CREATED, "web", lambda sc: web(sc.owner, f"/domains/{sc.domain_id}/aliases", {
        "address": "new", "destinations": "you@dest.test"}), "owner"),
    Case(audit.ALIAS_CREATED, "api", lambda sc: sc.owner_api("POST", f"/domains/{sc.domain_id}/aliases", {
        "local_part": "new", "destinations": ["you@dest.test"]}, status=201), "owner"),
    Case(audit.ALIAS_CREATED, "cli", lambda sc: sc.cli("aliases", "add", "new@owned.test", "you@dest.test"), "cli"),
    Case(audit.ALIAS_CHANGED, "web", lambda sc: web(sc.owner, f"/aliases/{sc.alias_id}/edit", {
        "destinations": "me@dest.test\nyou@dest.test", "note": "first note", "enabled": "y"}), "owner"),
    Case(audit.ALIAS_CHANGED, "web", lambda sc: web(sc.owner, f"/aliases/{sc.alias_id}/toggle"), "owner"),
    Case(audit.ALIAS_CHANGED, "api", lambda sc: sc.owner_api("PATCH", f"/aliases/{sc.alias_id}", {
        "enabled": False}, status=200), "owner"),
    Case(audit.ALIAS_CHANGED, "api", lambda sc: sc.admin_api("PATCH", f"/aliases/{sc.alias_id}", {
        "destinations": ["you@dest.test"]}, status=200), "admin"),
    Case(audit.ALIAS_DELETED, "web", lambda sc: web(sc.owner, f"/aliases/{sc.alias_id}/delete"), "owner"),
    Case(audit.ALIAS_DELETED, "api", lambda sc: sc.owner_api("DELETE", f"/aliases/{sc.alias_id}", status=204),
         "owner"),
    Case(audit.ALIAS_DELETED, "cli", lambda sc: sc.cli("aliases", "remove", "hello@owned.test"), "cli"),
    Case(audit.MESSAGE_RETRIED, "web", lambda sc: web(sc.owner, f"/messages/{sc.queued_id}/retry"), "owner"),
    Case(audit.MESSAGE_RETRIED, "api", lambda sc: sc.owner_api("POST", f"/messages/{sc.queued_id}/retry",
                                                               status=200), "owner"),
    Case(audit.MESSAGE_GIVEN_UP, "web", lambda sc: web(sc.owner, f"/messages/{sc.queued_id}/give-up"), "owner"),
    Case(audit.MESSAGE_GIVEN_UP, "api", lambda sc: sc.owner_api("POST", f"/messages/{sc.queued_id}/give-up",
                                                                status=200), "owner"),
    Case(audit.MESSAGE_REQUEUED, "web", lambda sc: web(sc.admin, f"/admin/failed/{sc.bounced_id}/requeue"), "admin"),
    Case(audit.MESSAGE_REQUEUED, "api", lambda sc: sc.admin_api("POST", f"/admin/failed/{sc.bounced_id}/requeue",
                                                                status=200), "admin"),
    Case(audit.QUARANTINE_RELEASED, "web", lambda sc: web(
        sc.owner, f"/domains/{sc.domain_id}/quarantine/{sc.held_id}/release"), "owner"),
    Case(audit.QUARANTINE_RELEASED, "api", lambda sc: sc.owner_api("POST", f"/quarantine/{sc.held_id}/release",
                                                                   status=200), "owner"),
    Case(audit.QUARANTINE_RELEASED, "cli", lambda sc: sc.cli("quarantine", "release", sc.held_id), "cli"),
    Case(audit.QUARANTINE_DELETED, "web", lambda sc: web(
        sc.owner, f"/domains/{sc.domain_id}/quarantine/{sc.held_id}/delete"), "owner"),
    Case(audit.QUARANTINE_DELETED, "api", lambda sc: sc.owner_api("DELETE", f"/quarantine/{sc.held_id}",
                                                                  status=204), "owner"),
    Case(audit.QUARANTINE_DELETED, "cli", lambda sc: sc.cli("quarantine", "delete", sc.held_id), "cli"),
]
ACTORS = {"owner": "owner@people.test", "admin": "admin@people.test", "cli": "cli", "signup": "signup",
          "anonymous": "anonymous"}


def _owner_id(sc: Scene, who: str | None) -> int | None:
    if who is None:
        return None
    if who == "new":
        with sc.db.session() as s:
            return s.scalar(select(User.id).where(User.email == "new@people.test"))
    return {"owner": sc.owner_id, "admin": sc.admin_id}[who]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_action_writes_one_event(scene, case):
    before = len(scene.events(case.action))
    case.run(scene)
    events = scene.events(case.action)
    assert len(events) == before + 1, [(e.actor, e.summary) for e in events]
    event = events[0]
    assert event.actor == ACTORS[case.actor]
    assert event.owner_id == _owner_id(scene, case.owner)
    assert event.ip == ("" if case.via == "cli" else WEB_IP)
    assert event.summary and event.object_type


def test_every_action_is_driven():
    assert {c.action for c in CASES} == set(audit.ACTIONS)
