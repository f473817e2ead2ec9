"""Every link our notices carry opens a page of the dashboard (the worker spells the paths, outside any request)."""

from __future__ import annotations

from app import create_app
from app.services import notice_links
from harness.settings import make_settings


def test_each_link_is_a_dashboard_route(tmp_path):
    settings = make_settings(DATABASE_URL=f"sqlite:///{tmp_path}/unused.db", PUBLIC_URL="https://mail.example.com/")
    urls = create_app(settings).url_map.bind("mail.example.com")
    for url, endpoint, args in ((notice_links.domain_page(settings, 7), "domains.show", {"domain_id": 7}),
                                (notice_links.dkim_section(settings, 7), "domains.show", {"domain_id": 7}),
                                (notice_links.quarantine_page(settings, 7), "quarantine.index", {"domain_id": 7}),
                                (notice_links.notification_settings(settings), "auth.account", {})):
        assert url.startswith("https://mail.example.com/"), url
        path = url.removeprefix("https://mail.example.com").partition("#")[0]
        assert urls.match(path, "GET") == (endpoint, args), url
