import logging

from app.services.login_limit import IP_MAX_DELAY, LoginLimiter
from mailferry.queue import make_redis

ATTACKER, USER = "198.51.100.66", "203.0.113.10"


def _fail(limiter: LoginLimiter, client: str, email: str, times: int) -> None:
    for _ in range(times):
        limiter.record_failure(client, email)


def test_a_failing_address_locks_only_its_own_pair(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=3, window=600)
    _fail(limiter, ATTACKER, "Victim@people.test", 3)
    wait = limiter.wait(ATTACKER, "victim@people.test")
    assert wait.reason == "account" and 590 <= wait.seconds <= 600
    assert "Try again in 10 minutes" in wait.message
    assert limiter.wait(USER, "victim@people.test") is None  # the owner, from their own address
    assert not any(b"people.test" in k for k in redis_conn.keys("*"))  # no addresses stored in Redis


def test_an_address_failing_across_accounts_waits_longer_each_time(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=3, window=600)
    for n in range(3):
        limiter.record_failure(ATTACKER, f"user{n}@people.test")
    assert limiter.wait(ATTACKER, "next@people.test") is None  # within the free failures
    seen = []
    for n in range(3, 13):
        limiter.record_failure(ATTACKER, f"user{n}@people.test")
        seen.append(redis_conn.pttl(f"mailferry:login-failures:ip-wait:{ATTACKER}"))
    assert [round(ms / 1000) for ms in seen[:5]] == [1, 2, 4, 8, 16]
    assert max(seen) <= IP_MAX_DELAY * 1000 and round(seen[-1] / 1000) == IP_MAX_DELAY
    wait = limiter.wait(ATTACKER, "fresh@people.test")
    assert wait.reason == "address" and wait.seconds > 0
    assert limiter.wait(USER, "fresh@people.test") is None


def test_wrong_codes_lock_the_second_step_of_the_account_from_everywhere(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=2, window=600)
    for n in range(2):
        limiter.record_second_factor_failure(f"198.51.100.{n}", "a@people.test")
    assert limiter.wait("198.51.100.9", "a@people.test") is None  # the password step is not locked ...
    assert limiter.second_factor_wait("198.51.100.9", "a@people.test").reason == "second factor"  # ... codes are
    limiter.succeeded("198.51.100.9", "a@people.test")
    assert limiter.second_factor_wait("198.51.100.9", "a@people.test") is None


def test_a_login_clears_its_pair_but_not_the_address(redis_conn):
    limiter = LoginLimiter(redis_conn, limit=2, window=600)
    _fail(limiter, ATTACKER, "a@people.test", 3)
    limiter.succeeded(ATTACKER, "a@people.test")
    assert limiter.wait(ATTACKER, "a@people.test").reason == "address"  # the third failure set a delay
    assert int(redis_conn.get(f"mailferry:login-failures:ip:{ATTACKER}")) == 3


def test_redis_down_fails_open_with_a_log_line(redis_server, caplog):
    conn = make_redis(redis_server.url)
    limiter = LoginLimiter(conn, limit=1, window=600)
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mailferry.login_limit"):
            limiter.record_failure("127.0.0.5", "a@people.test")
            assert limiter.wait("127.0.0.5", "a@people.test") is None
            assert limiter.second_factor_wait("127.0.0.5", "a@people.test") is None
            limiter.succeeded("127.0.0.5", "a@people.test")
    finally:
        redis_server.start()
        conn.close()
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 4
