from datetime import timedelta

from rq import SimpleWorker
from rq.job import Job

from app.services.domains import add_domain
from app.services.scheduling import (
    PURGE_INTERVAL,
    PURGE_JOB_ID,
    PURGE_LOCK,
    REVERIFY_JOB_ID,
    enqueue_quarantine_purge_if_due,
    enqueue_reverify_if_due,
)
from mailferry.models import Domain, Message, utcnow
from mailferry.queue import get_queue
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import seed_quarantined


def test_reverify_runs_once_per_interval_through_a_real_rq_worker(db, redis_conn, redis_url, dns_server,
                                                                  app_settings, good_domain, monkeypatch):
    queue = get_queue(redis_conn, app_settings.RQ_QUEUE)
    assert enqueue_reverify_if_due(redis_conn, queue, app_settings)
    assert not enqueue_reverify_if_due(redis_conn, queue, app_settings)  # another worker, same day
    assert queue.count == 1
    for name, value in {"DATABASE_URL": db.url, "REDIS_URL": redis_url, "DNS_NAMESERVERS": dns_server.nameservers,
                        "DNS_TIMEOUT": "1", "SMTP_PUBLIC_IPS": SERVER_IP, "SMTP_HOSTNAME": HOSTNAME,
                        "SECRET_KEY": app_settings.SECRET_KEY}.items():
        monkeypatch.setenv(name, value)
    dns_server.remove("example.test", "MX")
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    job = Job.fetch(REVERIFY_JOB_ID, connection=redis_conn)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    assert job.return_value()["checked"] == 1
    with db.session() as s:
        domain = s.get(Domain, good_domain)
        assert domain.check_results["mx"]["ok"] is False and domain.last_check_at is not None


def test_quarantine_purge_runs_once_per_hour_through_a_real_rq_worker(db, redis_conn, redis_url, app_settings,
                                                                      owner, monkeypatch):
    with db.session() as s:
        domain_id = add_domain(s, "owned.test", owner).id
    seed_quarantined(db, "old", domain_id, received_at=utcnow() - timedelta(days=app_settings.QUARANTINE_DAYS + 1))
    seed_quarantined(db, "new", domain_id)
    queue = get_queue(redis_conn, app_settings.RQ_QUEUE)
    assert enqueue_quarantine_purge_if_due(redis_conn, queue, app_settings)
    assert not enqueue_quarantine_purge_if_due(redis_conn, queue, app_settings)  # another worker, same hour
    assert 3500 < redis_conn.ttl(PURGE_LOCK) <= PURGE_INTERVAL
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SECRET_KEY", app_settings.SECRET_KEY)
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    job = Job.fetch(PURGE_JOB_ID, connection=redis_conn)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    assert job.return_value() == 1
    with db.session() as s:
        assert [m.id for m in s.query(Message)] == ["new"]


def test_the_worker_runs_both_periodic_jobs():
    import worker

    assert {enqueue_reverify_if_due, enqueue_quarantine_purge_if_due} <= set(worker.PERIODIC)
