import multiprocessing

from mailferry.queue import make_redis
from smtp.routing.limits import DomainLimiter


def test_concurrent_connections_are_capped_and_released(redis_conn):
    limiter = DomainLimiter(redis_conn, max_connections=2, per_minute=100)
    a, b = limiter.acquire("gmail.test", now=1000), limiter.acquire("gmail.test", now=1000)
    assert a.granted and b.granted
    third = limiter.acquire("gmail.test", now=1000)
    assert not third.granted and third.retry_after >= 1
    assert limiter.acquire("other.test", now=1000).granted  # limits are per destination domain
    limiter.release("gmail.test", a)
    assert limiter.acquire("gmail.test", now=1000).granted


def test_new_connections_per_minute(redis_conn):
    limiter = DomainLimiter(redis_conn, max_connections=100, per_minute=10)
    grants = [limiter.acquire("yahoo.test", now=1000 + i) for i in range(10)]
    assert all(g.granted for g in grants)
    for g in grants:
        limiter.release("yahoo.test", g)
    refused = limiter.acquire("yahoo.test", now=1020)
    assert not refused.granted and 40 <= refused.retry_after <= 60
    assert limiter.acquire("yahoo.test", now=1061).granted  # the first one left the window


def test_slot_of_a_dead_worker_expires(redis_conn):
    limiter = DomainLimiter(redis_conn, max_connections=1, per_minute=100, slot_ttl=30)
    assert limiter.acquire("d.test", now=1000).granted  # never released
    assert not limiter.acquire("d.test", now=1010).granted
    assert limiter.acquire("d.test", now=1031).granted


def _grab(url: str, results) -> None:
    limiter = DomainLimiter(make_redis(url), max_connections=3, per_minute=1000)
    results.extend([limiter.acquire("shared.test").granted for _ in range(5)])


def test_limit_holds_across_processes(redis_url):
    with multiprocessing.Manager() as manager:
        results = manager.list()
        procs = [multiprocessing.Process(target=_grab, args=(redis_url, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert sorted(results).count(True) == 3 and len(results) == 10


def test_reusing_an_open_connection_takes_no_rate_token_but_a_concurrency_slot(redis_conn):
    limiter = DomainLimiter(redis_conn, max_connections=2, per_minute=1)
    first = limiter.acquire("reuse.test", now=1000)
    assert first.granted and not limiter.acquire("reuse.test", now=1001).granted  # one new connection a minute
    limiter.release("reuse.test", first)
    reused = [limiter.acquire("reuse.test", now=1002 + i, new_connection=False) for i in range(2)]
    assert all(g.granted for g in reused)
    assert not limiter.acquire("reuse.test", now=1005, new_connection=False).granted  # both slots in use


def test_without_redis_the_limits_are_not_applied_and_release_never_raises(redis_server, redis_url):
    limiter = DomainLimiter(make_redis(redis_url), max_connections=1, per_minute=1)
    held = limiter.acquire("down.test")
    redis_server.stop()  # the next test's `redis_url` fixture starts it again
    grant = limiter.acquire("down.test")
    assert grant.granted  # a delivery under way is not failed for its limits
    limiter.release("down.test", grant)
    limiter.release("down.test", held)  # a destination that took the message must not see it again
