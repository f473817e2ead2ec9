"""What every page shares: security headers, local assets only, JSON 404s under /api."""

import os
import re

import app
from tests.app.web_fixtures import browser, make_web_app, web_app, web_settings  # noqa: F401  (fixtures)


def test_security_headers_and_no_third_party_assets(browser):  # noqa: F811
    response = browser.get("/login")
    csp = _directives(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == csp["script-src"] == csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert not any("unsafe" in value for values in csp.values() for value in values)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP in development: no HSTS
    html = response.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/") for a in assets), assets
    assert browser.get("/static/style.css").status_code == 200
    assert browser.get("/static/copy.js").status_code == 200


def test_unknown_pages_are_html_404_and_unknown_api_routes_json_404(browser):  # noqa: F811
    page = browser.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = browser.get("/api/v1/no-such-route")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"


def _directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (d.split() for d in csp.split(";") if d.strip())}


def test_every_response_carries_the_security_headers(browser):  # noqa: F811
    for url in ("/login", "/", "/no-such-page", "/static/copy.js", "/api/v1/domains", "/api/v1/openapi.json",
                "/healthz"):
        headers = browser.get(url).headers
        assert "script-src 'self'" in headers.get("Content-Security-Policy", ""), url
        assert headers.get("X-Frame-Options") == "DENY" and headers.get("X-Content-Type-Options") == "nosniff", url


def test_hsts_when_the_session_cookie_is_secure(web_settings):  # noqa: F811
    app = make_web_app(web_settings.replace(SESSION_COOKIE_SECURE=True))
    for url in ("/login", "/api/v1/openapi.json", "/static/style.css"):
        assert app.test_client().get(url).headers["Strict-Transport-Security"] == "max-age=31536000", url
    app.extensions["mailferry.db"].dispose()


def test_templates_have_no_inline_script_or_style():
    """The CSP would block them (and break the page); event handlers belong in app/static/*.js."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+\s*=|\sstyle\s*=|javascript:", re.IGNORECASE)
    root = os.path.join(os.path.dirname(app.__file__), "templates")
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name)) as template:
                assert not inline.search(template.read()), name
