import re
from datetime import timedelta

from app.services.domains import add_domain
from app.services.stats import MX_HITS_KEY, MX_LOOKUPS_KEY, daily_series
from app.stats.chart import line_chart, nice_ceiling
from mailferry.models import DailyStat, Message, utcnow
from tests.app.web_fixtures import seed_message


def _stat(db, domain_id, days_ago, **counts):
    with db.session() as s:
        s.add(DailyStat(domain_id=domain_id, day=utcnow().date() - timedelta(days=days_ago),
                        **{k: 0 for k in ("received", "forwarded", "deferred", "bounced", "direct", "relay",
                                          "dkim_signed", "dkim_unsigned")} | counts))


def _points(html, series):
    return re.search(rf'class="series-{series}"[^>]*points="([^"]+)"', html).group(1).split()


def _received(db, message_id, domain_id, days_ago):
    seed_message(db, message_id, domain_id, "a@owned.test", ("x@gmail.test",))
    with db.session() as s:
        s.get(Message, message_id).received_at = utcnow() - timedelta(days=days_ago)


def test_domain_stats_page_draws_30_days(owner_browser, owner_domain, db):
    _stat(db, owner_domain, 0, forwarded=6, bounced=1, direct=5, relay=1)
    _stat(db, owner_domain, 3, forwarded=2, direct=2)
    _stat(db, owner_domain, 45, forwarded=100)  # outside the window
    for n, days_ago in enumerate((0, 0, 3, 45)):
        _received(db, f"MSG000000000000{n}", owner_domain, days_ago)
    html = owner_browser.get(f"/domains/{owner_domain}/stats").get_data(as_text=True)
    assert "<svg" in html and len(_points(html, "received")) == 30
    assert re.search(r'id="total-received">3<', html) and re.search(r'id="total-forwarded">8<', html)
    assert re.search(r'id="total-bounced">1<', html)
    assert "7 direct / 1 relay" in html


def test_owner_overall_stats_sum_only_their_domains(owner_browser, owner_domain, other_owner, db):
    with db.session() as s:
        theirs = add_domain(s, "theirs.test", other_owner).id
    _stat(db, owner_domain, 1, forwarded=4)
    _stat(db, theirs, 1, forwarded=50)
    _stat(db, 0, 1, forwarded=54)  # the all-domains row: admins only
    _received(db, "MSG0000000000001", owner_domain, 1)
    _received(db, "MSG0000000000002", theirs, 1)
    html = owner_browser.get("/stats").get_data(as_text=True)
    assert re.search(r'id="total-forwarded">4<', html) and re.search(r'id="total-received">1<', html)
    assert owner_browser.get(f"/domains/{theirs}/stats").status_code == 404


def test_admin_overall_stats_use_the_all_domains_row_and_show_the_mx_cache(admin_browser, owner_domain, db, redis_conn):
    _stat(db, 0, 2, forwarded=50)
    _stat(db, owner_domain, 2, forwarded=50)
    _received(db, "MSG0000000000001", owner_domain, 2)
    redis_conn.set(MX_LOOKUPS_KEY, 1)
    redis_conn.set(MX_HITS_KEY, 3)
    html = admin_browser.get("/stats").get_data(as_text=True)
    assert re.search(r'id="total-forwarded">50<', html) and re.search(r'id="total-received">1<', html)
    assert "75%" in html and "MX cache hits (3 / 4)" in html
    assert 'id="delivery"' in html and "Delivery · mode direct" in html and "MX: 1 lookups, 3 cache hits" in html


def test_owners_do_not_see_the_system_wide_delivery_figures(owner_browser, owner_domain):
    assert 'id="delivery"' not in owner_browser.get("/stats").get_data(as_text=True)


def test_queue_depth_counts_open_deliveries(owner_browser, owner_domain, db):
    seed_message(db, "MSG0000000000001", owner_domain, "a@owned.test", ("x@gmail.test", "y@gmail.test"))
    html = owner_browser.get(f"/domains/{owner_domain}/stats").get_data(as_text=True)
    assert re.search(r'id="queue-depth">2<', html)


def test_series_fills_missing_days_with_zeros(db, owner_domain):
    _stat(db, owner_domain, 0, forwarded=1)
    _received(db, "MSG0000000000001", owner_domain, 0)
    with db.session() as s:
        series = daily_series(s, domain_id=owner_domain, days=30)
    assert len(series) == 30 and series[-1]["forwarded"] == 1 and sum(d["forwarded"] for d in series) == 1
    assert series[-1]["received"] == 1 and sum(d["received"] for d in series) == 1
    assert series[0]["day"] == (utcnow().date() - timedelta(days=29)).isoformat()


def test_chart_scale():
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 180, 501)] == [1, 1, 5, 10, 10, 20, 200, 1000]
    series = [{"day": f"2026-11-{d:02d}", "received": d, "forwarded": 0, "deferred": 0, "bounced": 0} for d in (1, 2)]
    svg = str(line_chart(series, ("received",)))
    # the highest point touches the top of the plot, zero sits on the baseline
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert points[1].endswith(",12.0") and points[0].endswith(",122.0")
