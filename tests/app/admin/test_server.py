"""The admin Server page: the DNS records SMTP_HOSTNAME needs (app/services/server_records)."""

from __future__ import annotations

from app.services.server_records import HELO_SPF, THIS_SERVER, server_records
from harness.settings import make_settings
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import Browser, make_web_app


def test_records_for_the_configured_addresses():
    settings = make_settings(SMTP_HOSTNAME="mx.example.net", SMTP_PUBLIC_IPS="192.0.2.7, 2001:db8::25")
    assert [(r.type, r.name, r.value) for r in server_records(settings)] == [
        ("A", "mx.example.net", "192.0.2.7"),
        ("AAAA", "mx.example.net", "2001:db8::25"),
        ("PTR", "7.2.0.192.in-addr.arpa", "mx.example.net"),
        ("PTR", "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "mx.example.net"),
        ("TXT", "mx.example.net", "v=spf1 a -all"),
    ]


def test_without_public_ips_the_address_is_a_placeholder():
    records = server_records(make_settings(SMTP_HOSTNAME="mx.example.net", SMTP_PUBLIC_IPS=""))
    assert [(r.type, r.value) for r in records] == [("A/AAAA", THIS_SERVER), ("PTR", "mx.example.net"),
                                                    ("TXT", HELO_SPF)]


def test_the_admin_server_page_lists_them(admin_browser):
    html = admin_browser.get("/admin/server").get_data(as_text=True)
    assert f"DNS records for {HOSTNAME}" in html
    assert 'data-type="A"' in html and SERVER_IP in html
    assert "25.0.0.127.in-addr.arpa" in html and HELO_SPF in html and "R_SPF_NA" in html
    assert "Spam filtering is off: RSPAMD_URL is not set" in html


def test_the_page_without_public_ips(web_settings, admin):
    app = make_web_app(web_settings.replace(SMTP_PUBLIC_IPS=""))
    try:
        html = Browser(app).login("admin@people.test", "admin-password").get("/admin/server").get_data(as_text=True)
    finally:
        app.extensions["mailferry.db"].dispose()
    assert THIS_SERVER in html and 'data-type="A/AAAA"' in html
