import logging

from app.services.login_limit import LoginLimiter
from mailferry.queue import make_redis


def test_counts_per_address_and_per_account(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=2, window=600)
    for _ in range(2):
        limiter.record_failure("127.0.0.5", "A@people.test")
    assert limiter.blocked("127.0.0.5", "someone-else@people.test")  # the address is used up
    assert limiter.blocked("127.0.0.6", "a@people.test")  # so is the account, from anywhere
    assert not limiter.blocked("127.0.0.6", "b@people.test")
    assert all(0 < redis_conn.ttl(k) <= 600 for k in redis_conn.keys("mailferry:login-failures:*"))
    assert not any(b"people.test" in k for k in redis_conn.keys("*"))  # no addresses stored in Redis


def test_a_successful_login_clears_the_account_but_not_the_address(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=2, window=600)
    for _ in range(2):
        limiter.record_failure("127.0.0.5", "a@people.test")
    limiter.reset_account("a@people.test")
    assert not limiter.blocked("127.0.0.6", "a@people.test")
    assert limiter.blocked("127.0.0.5", "a@people.test")


def test_redis_down_fails_open_with_a_log_line(redis_server, caplog):
    conn = make_redis(redis_server.url)
    limiter = LoginLimiter(conn, limit=1, window=600)
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mailferry.login_limit"):
            limiter.record_failure("127.0.0.5", "a@people.test")
            assert not limiter.blocked("127.0.0.5", "a@people.test")
            limiter.reset_account("a@people.test")
    finally:
        redis_server.start()
        conn.close()
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 3
