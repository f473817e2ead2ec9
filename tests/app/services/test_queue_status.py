from datetime import timedelta

from app.services.queue_status import queue_status
from harness.net import free_port
from harness.settings import make_settings
from mailferry.models import Message, utcnow
from mailferry.models.message import DEFERRED, DELIVERED, DONE
from mailferry.queue import enqueue_messages, get_queue
from smtp.routes import Route, build_message

RAW = b"From: a@sender.test\r\nSubject: hi\r\n\r\nbody\r\n"


def seed(db):
    with db.session() as s:
        fresh = build_message("AAAAAAAAAAAAAAA1", mail_from="a@sender.test", raw=RAW,
                              routes=[Route("me@example.test", ("x@mail.test", "y@mail.test"))])
        later = build_message("AAAAAAAAAAAAAAA2", mail_from="b@sender.test", raw=RAW,
                              routes=[Route("me@example.test", ("x@mail.test",))])
        later.received_at = utcnow() - timedelta(hours=1)
        later.next_attempt_at = utcnow() + timedelta(minutes=10)
        later.deliveries[0].state = DEFERRED
        done = build_message("AAAAAAAAAAAAAAA3", mail_from="", raw=RAW,
                             routes=[Route("me@example.test", ("x@mail.test",))])
        done.state = DONE
        done.deliveries[0].state = DELIVERED
        s.add_all([fresh, later, done])


def test_counts_due_oldest_and_rq(db, redis_url, redis_conn):
    seed(db)
    settings = make_settings(DATABASE_URL=db.url, REDIS_URL=redis_url)
    enqueue_messages(get_queue(redis_conn, settings.RQ_QUEUE), ["AAAAAAAAAAAAAAA1"])
    with db.session() as s:
        status = queue_status(s, settings, recent=10)
    assert status["messages"] == {"queued": 2, "done": 1}
    assert status["deliveries"] == {"pending": 2, "deferred": 1, "delivered": 1, "bounced": 0}
    assert (status["due"], status["deferred"], status["leased"], status["not_enqueued"]) == (1, 1, 0, 2)
    assert status["oldest_queued_age_seconds"] >= 3599
    assert status["rq"] == {"reachable": True, "queue": "mailferry", "queued": 1, "started": 0, "scheduled": 0,
                            "failed": 0}
    assert status["recent"][-1]["id"] == "AAAAAAAAAAAAAAA2"  # newest first
    assert {m["id"] for m in status["recent"]} == {"AAAAAAAAAAAAAAA1", "AAAAAAAAAAAAAAA2", "AAAAAAAAAAAAAAA3"}
    first = next(m for m in status["recent"] if m["id"] == "AAAAAAAAAAAAAAA1")
    assert [(d["destination"], d["state"]) for d in first["deliveries"]] == [("x@mail.test", "pending"),
                                                                            ("y@mail.test", "pending")]


def test_redis_down_still_reports_the_database(db):
    seed(db)
    settings = make_settings(DATABASE_URL=db.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with db.session() as s:
        status = queue_status(s, settings)
        assert s.get(Message, "AAAAAAAAAAAAAAA1") is not None
    assert status["messages"]["queued"] == 2 and "recent" not in status
    assert status["rq"]["reachable"] is False and "ConnectionError" in status["rq"]["error"]
