"""Scale-out shown: two hosts (network namespaces this test makes), each running `python -m smtp` and
`python worker.py`, against one PostgreSQL and one Redis on a third (this machine's root namespace), with the
destination MX and the DNS server there too.

- mail sent to both front ends is delivered, each message exactly once;
- the per-domain connection limit holds across both hosts' workers (it lives in Redis);
- a host killed with SIGKILL while it delivers loses nothing: the other host's worker and reconciler deliver what
  it had accepted and what it was holding.
"""

from __future__ import annotations

import os
import re
import smtplib
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from harness.databases import migrate
from harness.dns_server import DnsServer
from harness.net import wait_for, wait_port
from harness.redis_server import RedisServer
from harness.settings import make_settings
from mailferry.db import Database
from mailferry.models import Message
from mailferry.models.message import DONE
from tests.smtp.delivery.conftest import Internet, World, service_env
from tests.smtp.delivery.sink import SlowHandler
from tests.support import netns
from tests.support.postgres_cluster import PostgresCluster, postgres_bin
from tests.support.processes import ServiceProcess

WHY_NOT = netns.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"scale-out across namespaces: {WHY_NOT}")
CONNECTION_LIMIT = 2
SMTP_PORT = 2525
# 10.<subnet>.<host>.0/30: the subnet is per test process, so two runs on one machine do not collide
SUBNET = 100 + os.getpid() % 100


class Host:
    """One namespace running an SMTP server and a worker."""

    def __init__(self, ns: netns.Namespace, env: dict[str, str], logdir: str):
        self.ns = ns
        prefix = tuple(ns.command())
        self.smtp = ServiceProcess(["-m", "smtp"], {**env, "SMTP_LISTEN": f"{ns.ip}:{SMTP_PORT}"},
                                   os.path.join(logdir, f"{ns.name}-smtp.log"), prefix)
        self.worker = ServiceProcess(["worker.py"], env, os.path.join(logdir, f"{ns.name}-worker.log"), prefix)

    def start(self) -> "Host":
        self.smtp.start()
        self.worker.start()
        wait_port(self.ns.ip, SMTP_PORT, timeout=30)
        return self

    def kill(self) -> None:
        self.worker.kill()
        self.smtp.kill()

    def logs(self) -> str:
        return f"--- smtp\n{self.smtp.log()[-3000:]}\n--- worker\n{self.worker.log()[-3000:]}"


@pytest.fixture
def namespaces():
    made = []
    try:
        for index in (1, 2):
            made.append(netns.Namespace(index, SUBNET).create())
        yield made
    finally:
        for ns in made:
            ns.destroy()


@pytest.fixture
def third_host(namespaces, tmp_path):
    """PostgreSQL, Redis and DNS on this machine's end of the first pair, which both namespaces route to."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (postgresql package) for a cluster the namespaces can reach")
    address = namespaces[0].gateway_ip
    cluster = PostgresCluster(bindir, host=address)
    redis = RedisServer(str(tmp_path), host=address)
    dns = DnsServer(host=address)
    try:
        cluster.start()
        url = cluster.create_database("mailferry")
        migrate(url)
        redis.start()
        dns.start()
        yield address, url, redis.url, dns
    finally:
        dns.stop()
        redis.stop()
        cluster.destroy()


class PeerCountingHandler(SlowHandler):
    """Also counts the messages by the address of the worker that delivered them."""

    def __init__(self, delay: float):
        super().__init__(delay)
        self.peers: Counter = Counter()

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("2"):
            self.peers[session.peer[0]] += 1
        return reply


def _send(host_ip: str, count: int, tag: str) -> list[str]:
    """`count` messages over one connection to a front end; the Message-IDs it accepted."""
    accepted = []
    with smtplib.SMTP(host_ip, SMTP_PORT, timeout=30) as client:
        for n in range(count):
            message_id = f"<{tag}-{n}-{uuid.uuid4().hex[:8]}@sender.test>"
            raw = (f"From: alice@sender.test\r\nTo: hello@alias.test\r\nSubject: {tag} {n}\r\n"
                   f"Message-ID: {message_id}\r\n\r\nbody {n}\r\n").encode()
            client.sendmail("alice@sender.test", ["hello@alias.test"], raw)
            accepted.append(message_id)
    return accepted


def _send_to_both(hosts: list[Host], count: int, tag: str) -> list[str]:
    results: list[list[str]] = [[] for _ in hosts]
    threads = [threading.Thread(target=lambda i=i, h=h: results[i].extend(_send(h.ns.ip, count, f"{tag}{i}")))
               for i, h in enumerate(hosts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    accepted = [mid for part in results for mid in part]
    assert len(accepted) == count * len(hosts), "a front end did not accept every message"
    return accepted


def _arrived(sink) -> Counter:
    return Counter(re.search(rb"^Message-ID: (<[^>]+>)", m.data, re.M | re.I).group(1).decode()
                   for m in sink.messages)


def _open_messages(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.state != DONE))


def test_two_hosts_share_the_work_deliver_once_and_survive_a_killed_host(namespaces, third_host, tmp_path):
    address, url, redis_url, dns = third_host
    internet = Internet(dns)
    env = {**service_env(url, redis_url, internet),
           "DIRECT_MAX_CONNECTIONS_PER_DOMAIN": str(CONNECTION_LIMIT), "DELIVERY_LEASE": "15s", "DELIVERY_BATCH": "5",
           "INBOUND_AUTHENTICATION": "false", "RATE_LIMIT_IP_PER_MINUTE": "0", "RATE_LIMIT_ALIAS_PER_HOUR": "0",
           "RATE_LIMIT_DOMAIN_PER_HOUR": "0", "REFUSED_RCPT_LIMIT_PER_HOUR": "0"}
    hosts = [Host(ns, env, str(tmp_path)) for ns in namespaces]
    db = Database(url)
    try:
        world = World(db, make_settings(**env), internet)
        world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
        internet.mx("dest.test", (10, "mx.dest.test", address))
        sink = internet.sink(address, handler=PeerCountingHandler(0.05))
        for host in hosts:
            host.start()

        first = _send_to_both(hosts, 40, "first")
        wait_for(lambda: set(_arrived(sink)) >= set(first), timeout=120,
                 what="the first round delivered\n" + "\n".join(h.logs() for h in hosts))
        wait_for(lambda: _open_messages(db) == 0, timeout=60, what="every message settled")
        arrived = _arrived(sink)
        assert all(arrived[mid] == 1 for mid in first), [m for m in first if arrived[m] != 1]
        assert 1 <= sink.handler.peak <= CONNECTION_LIMIT  # both hosts' workers, one limit
        assert all(sink.handler.peers[h.ns.ip] > 0 for h in hosts), sink.handler.peers  # the work was shared

        second = _send_to_both(hosts, 40, "second")  # all accepted (committed) before the kill
        wait_for(lambda: len(set(_arrived(sink)) & set(second)) >= 5, timeout=60, what="the second round under way")
        hosts[0].kill()  # SIGKILL mid-delivery: its leases are released only by expiring
        left = _open_messages(db)
        assert left >= 20, f"only {left} messages were left when the host died: the kill proved nothing"
        survivor_before = sink.handler.peers[hosts[1].ns.ip]
        wait_for(lambda: set(_arrived(sink)) >= set(second) and _open_messages(db) == 0, timeout=180,
                 what="the survivor finishing the dead host's work\n" + hosts[1].logs())
        arrived = _arrived(sink)
        duplicates = {mid: n for mid, n in arrived.items() if mid in second and n > 1}
        # At most what the killed worker had handed to the MX without recording it: one batch.
        assert len(duplicates) <= int(env["DELIVERY_BATCH"]), duplicates
        assert sink.handler.peak <= CONNECTION_LIMIT
        assert sink.handler.peers[hosts[1].ns.ip] - survivor_before >= left - len(duplicates) - 5
    finally:
        for host in hosts:
            host.kill()
        internet.stop()
        db.dispose()
