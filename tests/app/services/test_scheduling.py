from rq import SimpleWorker
from rq.job import Job

from app.services.scheduling import REVERIFY_JOB_ID, enqueue_reverify_if_due
from mailferry.models import Domain
from mailferry.queue import get_queue
from tests.app.conftest import HOSTNAME, SERVER_IP


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
