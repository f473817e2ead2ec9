from smtp.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


def test_opens_after_threshold_and_closes_after_a_good_trial(redis_conn):
    breaker = CircuitBreaker(redis_conn, threshold=3, cooldown=60)
    for _ in range(2):
        breaker.record_failure("relay1", now=1000)
    assert breaker.state("relay1", now=1000).state == CLOSED
    assert breaker.allow("relay1", now=1000)
    breaker.record_failure("relay1", now=1000)
    assert breaker.state("relay1", now=1001).state == OPEN
    assert not breaker.allow("relay1", now=1059)
    # cool-down over: exactly one caller gets the trial
    assert breaker.state("relay1", now=1061).state == HALF_OPEN
    assert breaker.allow("relay1", now=1061)
    assert not breaker.allow("relay1", now=1061)
    breaker.record_success("relay1")
    assert breaker.state("relay1", now=1062).state == CLOSED
    assert breaker.allow("relay1", now=1062)


def test_failed_trial_reopens_for_another_cooldown(redis_conn):
    breaker = CircuitBreaker(redis_conn, threshold=1, cooldown=30)
    breaker.record_failure("r", now=100)
    assert breaker.allow("r", now=131)
    breaker.record_failure("r", now=131)
    assert breaker.state("r", now=150).state == OPEN
    assert breaker.state("r", now=162).state == HALF_OPEN


def test_state_is_shared_through_redis(redis_conn, redis_url):
    from mailferry.queue import make_redis

    other_process_view = CircuitBreaker(make_redis(redis_url), threshold=1, cooldown=30)
    CircuitBreaker(redis_conn, threshold=1, cooldown=30).record_failure("shared", now=10)
    assert other_process_view.state("shared", now=11).state == OPEN
