"""Direct delivery with ALLOW_PRIVATE_DESTINATIONS=false: MX hosts (and the implicit MX) on loopback, private,
link-local, CGNAT or metadata addresses are never connected to and the delivery defers with the reason; a
public MX beside a private one is used; the socket goes to the checked IP literal. Relays stay trusted.

A loopback sandbox has no public address to deliver to: `Nat` is the transport's connector (constructor
injection) that records the address it is asked for and lands connections for public addresses on loopback
sinks, as the internet would route them."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from harness.net import wait_for
from mailferry.destinations import DestinationGuard
from mailferry.models.message import DEFERRED, DELIVERED
from mailferry.queue import enqueue_messages, get_queue, make_redis
from smtp.delivery.exchange import Transaction
from smtp.delivery.job import run
from smtp.delivery.mx import MxHost
from smtp.delivery.transport import DirectTransport, connect_to_address
from tests.smtp.delivery.conftest import ROOT
from tests.smtp.delivery.helpers import attempts, deliveries, dsn_ids
from tests.smtp.delivery.relays import primary_env
from tests.smtp.delivery.sink import Refuser

PRIVATE_MX = ["10.0.0.1", "169.254.169.254", "::1", "127.0.0.1", "::ffff:127.0.0.1", "100.64.0.1"]
PUBLIC_IP = "1.2.3.4"  # never really reached: Nat lands it on a loopback sink
REFUSED_LOG = "MX address refused: not a public destination"


class Nat:
    """A connector: records each address asked for, connects public ones to their loopback stand-in."""

    def __init__(self, routes: dict[str, str], before=None):
        self.routes = routes
        self.before = before  # runs first on every connection (the DNS rebinding test changes DNS there)
        self.asked: list[str] = []

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        if self.before:
            self.before()
        self.asked.append(address)
        return socket.create_connection((self.routes.get(address, address), port), timeout)


@pytest.fixture
def guarded(configure):
    """The delivery context as on the internet: private destinations refused, short timeouts."""
    return configure(ALLOW_PRIVATE_DESTINATIONS="false", SMTP_CONNECT_TIMEOUT="2")


@pytest.fixture
def listeners(internet):
    """Plain TCP listeners on 127.0.0.1 and [::1] at the MX port, counting every connection they get."""
    started = [Refuser("127.0.0.1", internet.port).start(), Refuser("::1", internet.port).start()]
    yield started
    for listener in started:
        listener.stop()


@pytest.fixture
def nat_transport(guarded):
    """with_nat(nat) -> the guarded context whose direct transport connects through `nat`."""
    made: list[DirectTransport] = []

    def with_nat(nat: Nat):
        settings = guarded.settings
        transport = DirectTransport(hostname=settings.SMTP_HOSTNAME, port=settings.SMTP_DIRECT_PORT, timeout=2,
                                    require_tls=False, guard=guarded.guard, connect=nat)
        made.append(transport)
        return replace(guarded, transport=transport)

    yield with_nat
    for transport in made:
        transport.close()


def _publish(internet, name: str, ip: str) -> None:
    internet.dns.set(name, "AAAA" if ":" in ip else "A", ip)


def _refusals(caplog, message_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.msg == REFUSED_LOG and getattr(r, "message_id", None) == message_id]


@pytest.mark.parametrize("ip", PRIVATE_MX)
def test_an_mx_on_a_private_address_defers_with_the_reason_and_is_never_connected(
        guarded, world, internet, db, listeners, caplog, ip):
    caplog.set_level(logging.INFO)
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.dns.add("dest.test", "MX", "10 mx.dest.test.")
    _publish(internet, "mx.dest.test", ip)

    message_id = world.seed([route])
    assert run(guarded, message_id) is not None  # due again: deferred, not bounced

    [delivery] = deliveries(db, message_id)
    reason = f"4.4.4 MX mx.dest.test resolves only to private addresses ({ip})"
    assert (delivery.state, delivery.last_code, delivery.last_reply) == (DEFERRED, 451, reason)
    assert [(a.outcome, a.reply) for a in attempts(db, delivery.id)] == [(DEFERRED, reason)]
    assert dsn_ids(db) == []
    assert [listener.connections for listener in listeners] == [0, 0]
    [logged] = _refusals(caplog, message_id)
    assert logged.mx == "mx.dest.test" and logged.refused[0].startswith(f"{ip}: ")


def test_an_implicit_mx_on_a_private_address_defers(guarded, world, internet, db, caplog):
    caplog.set_level(logging.INFO)
    route = world.alias(world.domain("alias.test"), "hello", "bob@bare.test")
    internet.dns.set("bare.test", "A", "10.0.0.2")  # no MX record: the domain's own address is its MX

    message_id = world.seed([route])
    assert run(guarded, message_id) is not None

    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.last_reply) == (
        DEFERRED, "4.4.4 MX bare.test resolves only to private addresses (10.0.0.2)")
    assert _refusals(caplog, message_id)


def test_every_mx_private_names_them_all(guarded, world, internet, db):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.dns.add("dest.test", "MX", "10 a.dest.test.", "20 b.dest.test.")
    internet.dns.set("a.dest.test", "A", "169.254.169.254")
    internet.dns.set("b.dest.test", "AAAA", "fd00::25")

    message_id = world.seed([route])
    run(guarded, message_id)

    assert deliveries(db, message_id)[0].last_reply == (
        "4.4.4 MX a.dest.test, b.dest.test resolves only to private addresses (169.254.169.254, fd00::25)")


def test_a_public_mx_beside_a_private_one_is_the_one_used(nat_transport, world, internet, db, listeners, caplog):
    caplog.set_level(logging.INFO)
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    # the preferred MX is on this machine; the backup is public
    internet.mx("dest.test", (10, "inside.dest.test", "127.0.0.1"), (20, "outside.dest.test", PUBLIC_IP))
    internet.dns.add("outside.dest.test", "A", "10.0.0.3")  # a private address beside the public one is skipped
    public = internet.sink("127.0.0.9")
    nat = Nat({PUBLIC_IP: "127.0.0.9"})
    ctx = nat_transport(nat)

    message_id = world.seed([route])
    assert run(ctx, message_id) is None

    assert nat.asked == [PUBLIC_IP]
    assert len(public.messages) == 1 and [listener.connections for listener in listeners] == [0, 0]
    [delivery] = deliveries(db, message_id)
    assert (delivery.state, delivery.route) == (DELIVERED, "mx:outside.dest.test")
    assert {r.mx for r in _refusals(caplog, message_id)} == {"inside.dest.test", "outside.dest.test"}


def test_a_dns_answer_changed_between_check_and_connect_cannot_redirect_the_connection(
        nat_transport, world, internet, db, listeners):
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", PUBLIC_IP))
    public = internet.sink("127.0.0.9")
    # the attacker's DNS switches the name to loopback once it has been checked, just before the connection
    nat = Nat({PUBLIC_IP: "127.0.0.9"}, before=lambda: internet.dns.set("mx.dest.test", "A", "127.0.0.1"))
    ctx = nat_transport(nat)

    message_id = world.seed([route])
    assert run(ctx, message_id) is None

    assert nat.asked == [PUBLIC_IP]  # the checked IP literal, not the name
    assert internet.dns.queries[("mx.dest.test.", "A")] == 1  # nothing resolved it again
    assert len(public.messages) == 1 and [listener.connections for listener in listeners] == [0, 0]
    assert deliveries(db, message_id)[0].state == DELIVERED


def test_the_transport_refuses_a_private_address_it_is_handed(internet, listeners):
    transport = DirectTransport(hostname="mx.mailferry.test", port=internet.port, timeout=2, require_tls=False,
                                guard=DestinationGuard())
    tx = Transaction("srs@alias.test", ["bob@dest.test"], b"Subject: x\r\n\r\nhi\r\n")
    try:
        [result] = transport.send([MxHost(10, "mx.dest.test", ("127.0.0.1", "::1"))], [tx])
    finally:
        transport.close()
    reply = result.replies["bob@dest.test"]
    assert reply.code is None and "not connecting to a loopback" in reply.text
    assert [listener.connections for listener in listeners] == [0, 0]


def test_the_connector_never_resolves_a_name(internet, listeners):
    with pytest.raises(socket.gaierror):
        connect_to_address("localhost", internet.port, 2)
    connect_to_address("127.0.0.1", internet.port, 2).close()
    wait_for(lambda: listeners[0].connections, what="the connection to the IP literal")
    assert [listener.connections for listener in listeners] == [1, 0]


def test_relays_are_trusted_configuration_even_on_loopback(configure, world, internet, relay_server, db):
    relay = relay_server("127.0.0.5")  # e.g. a local Postfix
    ctx = configure(ALLOW_PRIVATE_DESTINATIONS="false", SMTP_DELIVERY_MODE="relay", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")

    message_id = world.seed([route])
    assert run(ctx, message_id) is None

    assert len(relay.messages) == 1
    assert deliveries(db, message_id)[0].route == "relay:primary"


def test_hybrid_hands_a_private_mx_destination_to_the_relay(configure, world, internet, relay_server, db, listeners):
    relay = relay_server("127.0.0.5")
    ctx = configure(ALLOW_PRIVATE_DESTINATIONS="false", SMTP_DELIVERY_MODE="hybrid", **primary_env(relay))
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.1"))

    message_id = world.seed([route])
    assert run(ctx, message_id) is None

    assert len(relay.messages) == 1 and [listener.connections for listener in listeners] == [0, 0]
    [delivery] = deliveries(db, message_id)
    assert delivery.route == "relay:primary"
    assert "resolves only to private addresses (127.0.0.1)" in attempts(db, delivery.id)[0].reply


def test_the_worker_defers_a_private_mx_by_default_and_logs_why(world, internet, db, env, listeners):
    """`python worker.py` built from the environment, ALLOW_PRIVATE_DESTINATIONS unset (false): the JSON log
    line names the refused address with the message id."""
    route = world.alias(world.domain("alias.test"), "hello", "bob@dest.test")
    internet.mx("dest.test", (10, "mx.dest.test", "127.0.0.1"))
    message_id = world.seed([route])
    redis = make_redis(env["REDIS_URL"])
    enqueue_messages(get_queue(redis, env["RQ_QUEUE"]), [message_id])
    redis.close()
    production = {k: v for k, v in env.items() if k != "ALLOW_PRIVATE_DESTINATIONS"}

    done = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, capture_output=True, timeout=60,
                          env={**{k: v for k, v in os.environ.items() if k != "ALLOW_PRIVATE_DESTINATIONS"},
                               **production})

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = [json.loads(line) for line in done.stderr.decode().splitlines() if line.startswith("{")]
    [refused] = [entry for entry in lines if entry["msg"] == REFUSED_LOG]
    assert refused["message_id"] == message_id and refused["refused"][0].startswith("127.0.0.1: loopback")
    [delivery] = deliveries(db, message_id)
    assert delivery.state == DEFERRED and "resolves only to private addresses (127.0.0.1)" in delivery.last_reply
    assert [listener.connections for listener in listeners] == [0, 0]
