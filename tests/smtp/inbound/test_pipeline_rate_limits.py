"""Redis rate limits shared by two real `python -m smtp` processes (own ports, one Redis, one database):
messages per client address per minute at MAIL, messages per alias per hour at RCPT, refused recipients per
client address per hour over several connections (421 and close); and with Redis down, no limit at all."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time

import pytest

from harness.net import free_port, wait_port
from tests.smtp.conftest import RawClient
from tests.smtp.inbound.conftest import ALIAS_DOMAIN, compose, send
from tests.smtp.test_main import environment

SENDER = "alice@limits-example.com"


def wait_for_window(seconds: int, margin: int = 4) -> None:
    """Stay clear of a fixed window's end, so that every count of a test falls in one window."""
    left = seconds - int(time.time()) % seconds
    if left < margin:
        time.sleep(left + 0.1)


@pytest.fixture
def processes(db_url, redis_url, dns_server, tmp_path):
    """processes(n, **settings) -> [(host, port)] of n `python -m smtp` processes, SIGTERMed after the test."""
    started: list[subprocess.Popen] = []

    def start(n: int = 2, **settings) -> list[tuple[str, int]]:
        addresses = []
        for _ in range(n):
            port = free_port()
            env = environment(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_LISTEN=f"127.0.0.1:{port}",
                              DNS_NAMESERVERS=dns_server.nameservers, DNS_TIMEOUT=2, **settings)
            log = open(tmp_path / f"smtp{len(started)}.log", "wb")
            started.append(subprocess.Popen([sys.executable, "-m", "smtp"], cwd=tmp_path, env=env, stdout=log,
                                            stderr=subprocess.STDOUT))
            log.close()
            addresses.append(("127.0.0.1", port))
        for address in addresses:
            wait_port(*address, timeout=30)
        return addresses

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def aliases(site, senders):
    domain = site.domain()
    site.alias(domain, "john")
    site.alias(domain, "mary")
    senders.add("limits-example.com", dmarc=None)


def message(n: int, to: str = f"john@{ALIAS_DOMAIN}") -> bytes:
    return compose(f"Alice <{SENDER}>", to=to, message_id=f"<rl-{n}@limits-example.com>")


def test_messages_per_client_address_per_minute_hold_across_processes(aliases, processes):
    wait_for_window(60)
    one, two = processes(RATE_LIMIT_IP_PER_MINUTE=3)

    replies = [send(address, message(n), mail_from=SENDER) for n, address in enumerate([one, two, one])]
    assert [r.code for r in replies] == [250, 250, 250], [r.line for r in replies]

    for address in (two, one):
        refused = send(address, message(9), mail_from=SENDER)
        assert refused.code == 450 and refused.text.startswith("4.7.1 "), refused.line


def test_messages_per_alias_per_hour_hold_across_processes_at_rcpt(aliases, processes):
    wait_for_window(3600)
    one, two = processes(RATE_LIMIT_IP_PER_MINUTE=0, RATE_LIMIT_ALIAS_PER_HOUR=2)

    assert send(one, message(1), mail_from=SENDER).code == 250
    assert send(two, message(2), mail_from=SENDER).code == 250
    for address in (one, two):
        with smtplib.SMTP(*address, timeout=10) as client:
            client.ehlo("mail.limits-example.com")
            assert client.mail(SENDER)[0] == 250
            code, text = client.rcpt(f"john@{ALIAS_DOMAIN}")
            assert (code, text[:6]) == (450, b"4.7.1 "), text
    # per alias: another alias of the domain still takes mail
    reply = send(two, message(3, f"mary@{ALIAS_DOMAIN}"), mail_from=SENDER, rcpts=(f"mary@{ALIAS_DOMAIN}",))
    assert reply.code == 250, reply.line


def test_refused_recipients_over_several_connections_close_the_session(aliases, processes):
    wait_for_window(3600)
    one, two = processes(RATE_LIMIT_IP_PER_MINUTE=0, REFUSED_RCPT_LIMIT_PER_HOUR=3)

    first = RawClient(one)
    first.cmd("EHLO mail.limits-example.com")
    assert first.cmd(f"MAIL FROM:<{SENDER}>").startswith("250")
    assert first.cmd(f"RCPT TO:<nobody1@{ALIAS_DOMAIN}>").startswith("550 5.1.1")
    assert first.cmd(f"RCPT TO:<nobody2@{ALIAS_DOMAIN}>").startswith("550 5.1.1")
    first.close()

    second = RawClient(two)
    second.cmd("EHLO mail.limits-example.com")
    assert second.cmd(f"MAIL FROM:<{SENDER}>").startswith("250")
    assert second.cmd(f"RCPT TO:<nobody3@{ALIAS_DOMAIN}>").startswith("550 5.1.1")
    closing = second.cmd(f"RCPT TO:<nobody4@{ALIAS_DOMAIN}>")
    assert closing.startswith("421 4.7.0"), closing
    assert second.closed()
    second.close()

    third = RawClient(one)  # the other process knows the address too: at MAIL already
    third.cmd("EHLO mail.limits-example.com")
    assert third.cmd(f"MAIL FROM:<{SENDER}>").startswith("421 4.7.0")
    assert third.closed()
    third.close()


def test_with_redis_down_mail_is_still_accepted_without_limits(aliases, inbound, redis_server, db):
    server = inbound(RATE_LIMIT_IP_PER_MINUTE=1, RATE_LIMIT_ALIAS_PER_HOUR=1, REFUSED_RCPT_LIMIT_PER_HOUR=1)
    redis_server.stop()  # the next test's `redis_url` fixture starts it again

    replies = [send(server, message(n), mail_from=SENDER) for n in range(3)]

    assert [r.code for r in replies] == [250, 250, 250], [r.line for r in replies]
