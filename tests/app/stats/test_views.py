import re
from datetime import timedelta

from app.services.domains import add_domain
from app.services.stats import MX_HITS_KEY, MX_LOOKUPS_KEY, daily_series
from app.stats.chart import line_chart, nice_ceiling, x_label_indexes, y_ticks
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
    words = " ".join(re.search(r'id="routes-in-words">(.*?)</p>', html, re.S).group(1).split())
    assert words == ("Of the 8 copies delivered in the last 30 days, <b>7</b> went straight to the recipients' own "
                     "mail servers (direct) and <b>1</b> through a relay, a mail service that delivers for this "
                     "server (88% direct).")


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
    assert points[1].endswith(",14.0") and points[0].endswith(",122.0")  # top 14, baseline 230


def _series(values: dict[str, list[int]]) -> list[dict]:
    days = len(next(iter(values.values())))
    keys = ("received", "forwarded", "deferred", "bounced")
    return [{"day": f"2026-11-{d + 1:02d}", **{k: values.get(k, [0] * days)[d] for k in keys}} for d in range(days)]


def test_y_ticks_are_whole_numbers_each_once():
    assert y_ticks(0) == [0, 1] and y_ticks(1) == [0, 1] and y_ticks(2) == [0, 1, 2]
    assert y_ticks(3) == [0, 1, 2, 3] and y_ticks(7) == [0, 2, 4, 6, 8] and y_ticks(11) == [0, 5, 10, 15]
    assert y_ticks(180) == [0, 50, 100, 150, 200] and y_ticks(1234) == [0, 500, 1000, 1500]
    for highest in range(0, 500):
        ticks = y_ticks(highest)
        assert ticks[0] == 0 and ticks[-1] >= highest and len(set(ticks)) == len(ticks) <= 6, (highest, ticks)


def test_small_counts_label_each_tick_once():
    svg = str(line_chart(_series({"received": [0, 1, 0], "forwarded": [0, 1, 0]}), ("received", "forwarded")))
    labels = re.findall(r'class="y-tick"[^>]*>(\d+)<', svg)
    assert labels == ["0", "1"]


def test_coinciding_lines_stay_visible():
    """Everything received was forwarded: the forwarded line is drawn on the received one, thinner."""
    svg = str(line_chart(_series({"received": [1, 2, 1], "forwarded": [1, 2, 1], "deferred": [1, 2, 1],
                                  "bounced": [1, 2, 1]}), ("received", "forwarded", "deferred", "bounced")))
    order = re.findall(r'<polyline class="series-(\w+)"[^>]*stroke-width="([\d.]+)"', svg)
    assert [k for k, _ in order] == ["received", "forwarded", "deferred", "bounced"]
    widths = [float(w) for _, w in order]
    assert widths[0] > widths[1] > widths[2]  # each thinner than the one under it
    tags = re.findall(r"<polyline [^>]*>", svg)
    dashes = {(re.search(r'stroke-dasharray="([^"]+)"', t) or re.match("", "")).group(0) for t in tags}
    assert len(dashes) >= 3  # solid, and two different dash patterns for the thin ones
    assert svg.count('<circle class="point-received"') == 3 and "2026-11-02: 2 received" in svg


def test_date_labels_stay_inside_and_do_not_collide():
    assert x_label_indexes(30) == [0, 5, 10, 15, 20, 25, 29]
    assert x_label_indexes(27) == [0, 5, 10, 15, 20, 26]  # 25 and 26 would overlap: 25 goes
    assert x_label_indexes(1) == [0]
    svg = str(line_chart(_series({"received": [0] * 30}), ("received",)))
    assert re.findall(r'class="x-tick"[^>]*text-anchor="(\w+)"', svg)[0] == "start"
    assert re.findall(r'class="x-tick"[^>]*text-anchor="(\w+)"', svg)[-1] == "end"
