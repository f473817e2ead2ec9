"""A quarantined message is stored and never dispatched: no RQ job when it is spooled, and the reconciler
(due_messages / recovery.recover) never picks it up, while it does pick up a queued message."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from mailferry.models import Message, utcnow
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.queue import due_messages, get_queue, has_live_job, make_redis
from smtp.delivery.recovery import recover
from tests.smtp.inbound.conftest import ALIAS_DOMAIN, compose, send, stored


def test_quarantined_mail_gets_no_job_and_the_reconciler_leaves_it(site, senders, inbound, db, redis_url):
    held_domain = site.domain(dmarc_reject_policy="quarantine")
    site.alias(held_domain)
    site.alias(site.domain("open-example.net"), "john")
    senders.add("bank-example.com", spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=reject")
    senders.add("friend-example.com", dmarc=None)
    server = inbound()

    held = send(server, compose("Bank <security@bank-example.com>"), mail_from="security@bank-example.com")
    queued = send(server, compose("Friend <f@friend-example.com>", to="john@open-example.net"),
                  mail_from="f@friend-example.com", rcpts=("john@open-example.net",))
    assert held.code == 250 and queued.code == 250, (held.line, queued.line)
    assert stored(db, held.message_id).state == QUARANTINED
    assert stored(db, queued.message_id).state == QUEUED
    assert ALIAS_DOMAIN != "open-example.net"

    redis = make_redis(redis_url)
    queue = get_queue(redis, "mailferry")
    try:
        deadline = time.monotonic() + 5
        while not has_live_job(redis, queued.message_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert has_live_job(redis, queued.message_id)  # the spool dispatches what it queues...
        time.sleep(0.3)
        assert not has_live_job(redis, held.message_id)  # ...and not what it quarantines
        assert held.message_id not in " ".join(queue.get_job_ids())

        due = due_messages(db)
        assert queued.message_id in due and held.message_id not in due
        with db.session() as s:  # a minute later, and Redis lost every job: the reconciler's case
            s.execute(update(Message).values(received_at=Message.received_at - timedelta(minutes=1),
                                             next_attempt_at=utcnow() - timedelta(minutes=1)))
        queue.empty()
        assert recover(db, queue) == [queued.message_id]
        assert not has_live_job(redis, held.message_id)
    finally:
        redis.close()
