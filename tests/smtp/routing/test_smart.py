import random

from smtp.routing.smart import DIRECT, HYBRID, RELAY, choose, record, scores


def test_no_history_behaves_like_hybrid(db):
    with db.session() as s:
        assert choose(s, "new.test") == HYBRID


def test_switches_to_relay_when_direct_keeps_failing_and_back_after_recovery(db):
    rng = random.Random(1)
    with db.session() as s:
        for _ in range(5):
            record(s, "flaky.test", DIRECT, ok=True)
    with db.session() as s:
        assert choose(s, "flaky.test", random.Random(99)) in (DIRECT, RELAY)
        for _ in range(6):
            record(s, "flaky.test", DIRECT, ok=False)
        for _ in range(3):
            record(s, "flaky.test", RELAY, ok=True)
    with db.session() as s:
        picks = [choose(s, "flaky.test", rng) for _ in range(200)]
    assert picks.count(RELAY) > 150 and picks.count(DIRECT) > 0  # mostly relay, still exploring direct
    with db.session() as s:
        for _ in range(8):
            record(s, "flaky.test", DIRECT, ok=True)
        relay_fails = [record(s, "flaky.test", RELAY, ok=False) for _ in range(2)]
        assert relay_fails == [None, None]
    with db.session() as s:
        picks = [choose(s, "flaky.test", rng) for _ in range(200)]
        assert picks.count(DIRECT) > 150
        current = scores(s, "flaky.test")
    assert current[DIRECT].successes == 13 and current[DIRECT].failures == 6
    assert current[DIRECT].score > current[RELAY].score
