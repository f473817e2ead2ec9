from datetime import timedelta

from rq import SimpleWorker
from rq.job import Job

from app.services.domains import add_domain
from app.services.scheduling import (
    NOTICES_INTERVAL,
    NOTICES_JOB_ID,
    NOTICES_LOCK,
    PURGE_INTERVAL,
    PURGE_JOB_ID,
    PURGE_LOCK,
    RETENTION_INTERVAL,
    RETENTION_JOB_ID,
    RETENTION_LOCK,
    REVERIFY_JOB_ID,
    enqueue_daily_notices_if_due,
    enqueue_delay_warnings_if_due,
    enqueue_quarantine_purge_if_due,
    enqueue_retention_if_due,
    enqueue_reverify_if_due,
)
from mailferry.models import Domain, Message, utcnow
from mailferry.models.message import DONE
from mailferry.queue import get_queue
from tests.app.conftest import HOSTNAME, SERVER_IP
from tests.app.web_fixtures import seed_message, seed_quarantined


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


def test_the_worker_runs_every_periodic_job():
    import worker

    assert set(worker.PERIODIC) == {enqueue_reverify_if_due, enqueue_quarantine_purge_if_due,
                                    enqueue_daily_notices_if_due, enqueue_retention_if_due,
                                    enqueue_delay_warnings_if_due}


def test_daily_notices_run_once_per_day_through_a_real_rq_worker(db, redis_conn, redis_url, app_settings, owner,
                                                                 monkeypatch):
    with db.session() as s:
        domain_id = add_domain(s, "owned.test", owner).id
    seed_quarantined(db, "held", domain_id, received_at=utcnow() - timedelta(hours=1))
    periodic = get_queue(redis_conn, "mf-periodic")  # the deliveries the job dispatches go to RQ_QUEUE, not here
    assert enqueue_daily_notices_if_due(redis_conn, periodic, app_settings)
    assert not enqueue_daily_notices_if_due(redis_conn, periodic, app_settings)  # another worker, same day
    assert NOTICES_INTERVAL - 100 < redis_conn.ttl(NOTICES_LOCK) <= NOTICES_INTERVAL
    for name, value in {"DATABASE_URL": db.url, "REDIS_URL": redis_url, "RQ_QUEUE": "mf-deliveries",
                        "SECRET_KEY": app_settings.SECRET_KEY}.items():
        monkeypatch.setenv(name, value)
    SimpleWorker([periodic], connection=redis_conn).work(burst=True)
    job = Job.fetch(NOTICES_JOB_ID, connection=redis_conn)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    assert job.return_value() == {"quarantine_digests": 1, "dkim_reminders": 0}
    assert get_queue(redis_conn, "mf-deliveries").count == 1  # the digest, dispatched after its commit


def test_retention_sweep_runs_once_per_hour_through_a_real_rq_worker(db, redis_conn, redis_url, app_settings,
                                                                    owner, monkeypatch):
    with db.session() as s:
        domain_id = add_domain(s, "owned.test", owner).id
    for message_id, days in (("old", app_settings.RETENTION_DAYS + 1), ("new", 0)):
        seed_message(db, message_id, domain_id, "hi@owned.test", ("me@dest.test",))
        with db.session() as s:
            message = s.get(Message, message_id)
            message.state, message.completed_at = DONE, utcnow() - timedelta(days=days, minutes=1)
    queue = get_queue(redis_conn, app_settings.RQ_QUEUE)
    assert enqueue_retention_if_due(redis_conn, queue, app_settings)
    assert not enqueue_retention_if_due(redis_conn, queue, app_settings)  # another worker, same hour
    assert 3500 < redis_conn.ttl(RETENTION_LOCK) <= RETENTION_INTERVAL
    for name, value in {"DATABASE_URL": db.url, "REDIS_URL": redis_url, "SECRET_KEY": app_settings.SECRET_KEY}.items():
        monkeypatch.setenv(name, value)
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    job = Job.fetch(RETENTION_JOB_ID, connection=redis_conn)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    assert job.return_value()["contents"] == 1 and job.return_value()["finished"] is True
    with db.session() as s:
        assert {m.id: m.raw == b"" for m in s.query(Message)} == {"old": True, "new": False}
