"""What every page shares: security headers, local assets only, JSON 404s under /api."""

import re

from tests.app.web_fixtures import browser, web_app, web_settings  # noqa: F401  (fixtures)


def test_security_headers_and_no_third_party_assets(browser):  # noqa: F811
    response = browser.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
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
