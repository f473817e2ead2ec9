"""delivery_stats(): outcomes by route and relay, circuits, DKIM, MX cache and per-domain success rates, from
the database and Redis (what every worker writes)."""

from __future__ import annotations

import json

from harness.settings import make_settings
from mailferry.delivery_stats import delivery_stats
from smtp.routing.breaker import CircuitBreaker
from tests.support.attempts import record_outcomes

RELAYS = json.dumps([{"name": "sendgrid", "host": "smtp.sendgrid.test"}])


def _settings(db_url, redis_url):
    return make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_DELIVERY_MODE="hybrid",
                         SMTP_HOST="smtp.gmail.test", SMTP_RELAYS=RELAYS, RELAY_FAILURE_THRESHOLD=2,
                         RELAY_COOLDOWN=300)


def test_figures_from_attempts_counters_and_redis(db, db_url, redis_url, redis_conn):
    settings = _settings(db_url, redis_url)
    record_outcomes(db, settings, "a@gmail.test", [("mx:mx.gmail.test", 451, False), ("relay:primary", 250, True)])
    record_outcomes(db, settings, "b@gmail.test", [("mx:mx.gmail.test", 250, True)])
    record_outcomes(db, settings, "c@yahoo.test", [("mx:mx.yahoo.test", 550, False)])
    record_outcomes(db, settings, "d@yahoo.test", [("relay:sendgrid", 451, False), ("", 451, False),
                                                   ("relay:old", 250, False)])
    breaker = CircuitBreaker(redis_conn, 2, 300)
    breaker.record_failure("sendgrid")
    breaker.record_failure("sendgrid")
    redis_conn.set("mailferry:mx:dns_lookups", 3)
    redis_conn.set("mailferry:mx:cache_hits", 5)
    for domain in ("gmail.test", "yahoo.test"):
        redis_conn.set(f"mailferry:mx:{domain}", "{}")

    stats = delivery_stats(db, redis_conn, settings, days=7)

    assert stats["mode"] == "hybrid" and stats["days"] == 7
    assert stats["direct"] == {"sent": 1, "failed": 2, "deferred": 1, "bounced": 1}
    assert stats["not_sent"] == {"deferred": 1, "bounced": 0}
    relays = {r["name"]: r for r in stats["relays"]}
    assert list(relays) == ["primary", "sendgrid", "old"]
    assert (relays["primary"]["sent"], relays["primary"]["failed"], relays["primary"]["host"]) == (1, 0, "smtp.gmail.test")
    assert (relays["sendgrid"]["sent"], relays["sendgrid"]["failed"]) == (0, 1)
    assert relays["old"]["configured"] is False and relays["old"]["sent"] == 1
    assert relays["primary"]["circuit"] == {"state": "closed", "failures": 0, "open_until": None}
    assert relays["sendgrid"]["circuit"]["state"] == "open" and relays["sendgrid"]["circuit"]["open_until"]
    assert stats["dkim"] == {"signed": 2, "unsigned": 1}  # per delivered forward
    assert stats["mx"] == {"lookups": 3, "cache_hits": 5, "cache_size": 2, "hit_rate": 0.625}
    domains = {d["domain"]: d for d in stats["domains"]}
    assert (domains["gmail.test"]["attempts"], domains["gmail.test"]["success_rate"]) == (3, 0.667)
    assert domains["gmail.test"]["direct_success_rate"] == 0.5 and domains["gmail.test"]["relay_success_rate"] == 1.0
    assert domains["yahoo.test"]["success_rate"] == 0.25 and domains["yahoo.test"]["direct_success_rate"] == 0.0
    assert json.loads(json.dumps(stats)) == stats  # what the API and `stats --json` print


def test_an_empty_system(db, db_url, redis_url, redis_conn):
    stats = delivery_stats(db, redis_conn, make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url))
    assert stats["mode"] == "direct" and stats["relays"] == [] and stats["domains"] == []
    assert stats["direct"] == {"sent": 0, "failed": 0, "deferred": 0, "bounced": 0}
    assert stats["mx"]["cache_size"] == 0 and stats["mx"]["hit_rate"] is None
