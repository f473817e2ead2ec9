"""Secrets never shown: DKIM private keys, relay passwords, SECRET_KEY and SRS_SECRET appear in no page, API
response, CLI output or log line of the dashboard's flows; an API token appears once, in the response that
creates it, and never in a log line; a TOTP secret only on its set-up page, recovery codes only in the response
that makes them, neither in a log line."""

import json
import re
import time

import pyotp
import pytest
from sqlalchemy import select

from harness.settings import make_settings
from mailferry.crypto import decrypt
from mailferry.models import ApiToken, DkimKey, Domain
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import Browser, api_for

RELAYS = [{"name": "backup", "host": "relay2.example.test", "port": 587, "user": "backup-user",
           "password": "relay2-password-Kx4vQ"}]
SECRETS = {"SECRET_KEY": "secret-key-for-the-leak-test-9f3Zr81", "SRS_SECRET": "srs-secret-for-the-leak-test-Wv7nP2kQ",
           "SMTP_PASSWORD": "relay-password-Zq9mT", "SMTP_RELAYS password": RELAYS[0]["password"]}
NEW_SECRET = re.compile(r"\bmf_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def web_settings(db_url, redis_url, dns_server):
    """Hybrid delivery with two relays, so the admin pages have relay settings to (not) show."""
    return make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, DNS_NAMESERVERS=dns_server.nameservers,
                         DNS_TIMEOUT=1, SMTP_PUBLIC_IPS=SERVER_IP, SMTP_HOSTNAME=HOSTNAME,
                         SECRET_KEY=SECRETS["SECRET_KEY"], SRS_SECRET=SECRETS["SRS_SECRET"],
                         SMTP_DELIVERY_MODE="hybrid", SMTP_HOST="relay.example.test", SMTP_USER="relay-user",
                         SMTP_PASSWORD=SECRETS["SMTP_PASSWORD"], SMTP_RELAYS=json.dumps(RELAYS))


def _web_flows(web_app) -> tuple[int, list[str]]:
    """The owner adds a domain, creates, rotates and switches DKIM keys, creates and revokes a token; returns
    the domain id and the token secrets the account page showed."""
    owner = Browser(web_app).login("owner@people.test", "owner-password")
    response = owner.post("/domains", {"name": "secrets.test"}, csrf_page="/")
    domain_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = f"/domains/{domain_id}"
    for algorithm in ("rsa", "ed25519"):
        assert owner.post(f"{page}/dkim", {"algorithm": algorithm}, csrf_page=page).status_code == 302
    assert owner.post(f"{page}/verify", {}, csrf_page=page).status_code in (200, 302)
    owner.get(page)
    created = owner.post("/account/tokens", {"token-name": "ci"}, csrf_page="/account",
                         follow_redirects=True).get_data(as_text=True)
    shown = sorted(set(NEW_SECRET.findall(created)))  # shown once, with its copy button
    assert len(shown) == 1
    with web_app.app_context():
        token_id = max(t.id for t in _tokens(web_app))
    owner.get("/account")
    assert owner.post(f"/account/tokens/{token_id}/revoke", {}, csrf_page="/account").status_code == 302
    for path in ("/", "/stats", f"{page}/stats", f"{page}/messages", f"{page}/aliases", f"{page}/quarantine"):
        assert owner.get(path).status_code == 200, path
    return domain_id, shown


def _tokens(web_app) -> list[ApiToken]:
    with web_app.extensions["mailferry.db"].session() as s:
        return list(s.scalars(select(ApiToken)))


def _api_flows(api, domain_id: int) -> None:
    for path in ("/domains", f"/domains/{domain_id}", f"/domains/{domain_id}/records", f"/domains/{domain_id}/dkim",
                 f"/domains/{domain_id}/verification", f"/domains/{domain_id}/stats", "/stats"):
        api("GET", path, status=200)
    key = api("POST", f"/domains/{domain_id}/dkim", json={"algorithm": "ed25519"}, status=201).get_json()
    api("POST", f"/domains/{domain_id}/dkim/{key['key']['id']}/activate", status=200)
    api("PATCH", f"/domains/{domain_id}", json={"spam_action": "reject"}, status=200)


def _admin_flows(web_app, admin_api) -> None:
    admin = Browser(web_app).login("admin@people.test", "admin-password")
    for path in ("/admin/server", "/admin/queue", "/admin/users", "/admin/failed", "/stats"):
        assert admin.get(path).status_code == 200, path
    for path in ("/stats", "/users", "/admin/failed", "/domains"):
        admin_api("GET", path, status=200)


def _two_factor_flows(web_app) -> tuple[str, list[str]]:
    """The owner sets up 2FA, logs in again with a recovery code, then with a TOTP code; returns the secret and
    the recovery codes the pages showed."""
    owner = Browser(web_app).login("owner@people.test", "owner-password")
    page = owner.get("/account/2fa").get_data(as_text=True)
    secret = re.search(r'id="totp-secret".*?<code>([A-Z2-7]+)</code>', page, re.S).group(1)
    totp = pyotp.TOTP(secret)
    shown = owner.post("/account/2fa", {"code": totp.now()}, csrf_page="/account")
    codes = re.findall(r"<li><code>([a-z2-9-]+)</code></li>", shown.get_data(as_text=True))
    assert len(codes) == 10
    for second_factor in (codes[0], totp.at(time.time() + 30)):  # a step later than the set-up's
        again = Browser(web_app)
        again.post("/login", {"email": "owner@people.test", "password": "owner-password"})
        assert again.post("/login/2fa", {"code": second_factor}).status_code == 302
        assert again.get("/account").status_code == 200
    return secret, codes


def _cli_output(web_app) -> list[str]:
    runner, outputs = web_app.test_cli_runner(), []
    for args in (["domains", "list"], ["domains", "records", "secrets.test"], ["dkim", "list", "secrets.test"],
                 ["dkim", "generate", "secrets.test", "--algorithm", "ed25519"], ["server", "records"],
                 ["queue", "status"], ["stats"]):
        for extra in ([], ["--json"]):
            result = runner.invoke(args=args + extra)
            assert result.exit_code == 0, (args, result.output)
            outputs.append(result.output)
    return outputs


def _private_key_fragments(web_app, secret_key: str) -> list[str]:
    """Each base64 line of every DKIM private key's PEM, and each key's body run together."""
    with web_app.extensions["mailferry.db"].session() as s:
        pems = [decrypt(secret_key, k.private_key_enc).decode() for k in s.scalars(select(DkimKey))]
    fragments = []
    for pem in pems:
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        fragments += body + ["".join(body)[:48]]
    return fragments


def test_no_secret_in_any_response_cli_output_or_log_line(web_app, db, owner, admin, responses, log_lines):
    owner_api = api_for(web_app, db, owner)
    domain_id, shown_tokens = _web_flows(web_app)
    _api_flows(owner_api, domain_id)
    admin_api = api_for(web_app, db, admin)
    _admin_flows(web_app, admin_api)
    totp_secret, recovery_codes = _two_factor_flows(web_app)
    cli = _cli_output(web_app)
    with db.session() as s:
        assert s.scalar(select(Domain).where(Domain.name == "secrets.test")).dkim_keys  # the flows made keys
    secrets = {**SECRETS, **{f"DKIM private key {i}": f for i, f in enumerate(
        _private_key_fragments(web_app, SECRETS["SECRET_KEY"]))},
        "owner's API token": owner_api.headers["Authorization"].split()[1],
        "admin's API token": admin_api.headers["Authorization"].split()[1]}
    assert len([k for k in secrets if k.startswith("DKIM")]) >= 8

    texts = [(f"{r.method} {r.url} -> {r.status}", r.headers + "\n" + r.body) for r in responses]
    texts += [(f"cli output {i}", out) for i, out in enumerate(cli)]
    texts += [(f"log line {i}", line) for i, line in enumerate(log_lines())]
    assert len(responses) > 40 and len(log_lines()) > 0
    found = [(where, name) for where, text in texts for name, value in secrets.items() if value in text]
    assert not found
    # The one token created from the dashboard: in its creation response only, and in no log line.
    [token] = shown_tokens
    assert [where for where, text in texts if token in text] == ["GET /account? -> 200"]  # the page the POST redirects to, once
    # The TOTP secret: on its set-up page only; each recovery code: in the response that turned 2FA on only.
    assert [where for where, text in texts if totp_secret in text] == ["GET /account/2fa? -> 200"]
    for code in recovery_codes:
        assert [where for where, text in texts if code in text] == ["POST /account/2fa? -> 200"], code
