"""The Mailferry path: `python -m smtp`, N `python worker.py`, a private Redis, a fresh database (SQLite or
PostgreSQL), a loopback DNS server answering the destination's MX, aliases with DKIM on.

Inbound authentication and rspamd are off (INBOUND_AUTHENTICATION=false, RSPAMD_URL empty) unless
`authenticated`: then the DNS server also publishes the sending domain's SPF (127.0.0.1), DKIM key and DMARC
p=reject, the load's messages carry a signature of that key (signed once per recipient), and a private rspamd
(mailferry/rspamd_config.py, resolving through the same DNS server) scans every message."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, select, text

from app.services.dkim_keys import generate_key
from harness.databases import migrate
from harness.dns_server import DnsServer
from harness.net import free_port
from harness.redis_server import RedisServer
from harness.rspamd_server import RspamdServer
from mailferry.db import Database
from mailferry.dkim_keys import SigningKey
from mailferry.models import ROLE_ADMIN, Alias, Delivery, Domain, Mailbox, Message, User, utcnow
from mailferry.models.mailbox import BY_ADMIN
from smtp.delivery.signing import dkim_signature

from . import procs
from .loadgen import close_all, open_idle
from .messages import message
from .paths import ALIAS_DOMAIN, DEST_DOMAIN, SENDER, Path
from .stats import latency_ms

SECRET_KEY = "bench-secret-key-0123456789abcdef"
# An existing database on the server to run CREATE/DROP DATABASE from.
PG_ADMIN_URL = os.environ.get("MAILFERRY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MX_HOST = f"mx.{DEST_DOMAIN}"
SENDER_DOMAIN = SENDER.rpartition("@")[2]
SENDER_SELECTOR = "bench"


class BenchDatabase:
    """A migrated database of its own: a SQLite file in the workdir, or CREATE DATABASE on PG_ADMIN_URL."""

    def __init__(self, kind: str, workdir: str):
        if kind not in ("sqlite", "postgresql"):
            raise ValueError(f"unknown database {kind!r}: sqlite or postgresql")
        self.kind = kind
        self.name = f"mf_bench_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{os.path.join(workdir, self.name)}.db"
        else:
            self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
            self._admin(f'CREATE DATABASE "{self.name}"')
        migrate(self.url)

    def _admin(self, sql: str) -> None:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def drop(self) -> None:
        if self.kind == "postgresql":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def seed(url: str, local_parts: list[str], algorithm: str) -> None:
    """An owner, the alias domain verified with an active DKIM key, one alias per local part."""
    db = Database(url)
    try:
        with db.session() as s:
            owner = User(email="owner@origin.bench.test", password_hash="-", role=ROLE_ADMIN)
            s.add(owner)
            s.flush()
            domain = Domain(name=ALIAS_DOMAIN, owner_id=owner.id, verify_token="bench", verified=True,
                            force_verified=True, verified_at=utcnow())
            s.add(domain)
            s.flush()
            generate_key(s, domain, SECRET_KEY, algorithm=algorithm)
            for lp in local_parts:
                s.add(Alias(domain_id=domain.id, local_part=lp, destinations=[f"{lp}@{DEST_DOMAIN}"]))
                # confirmed destinations: the RCPT lookup measured is the production one (REQUIRE_VERIFIED_DESTINATIONS)
                s.add(Mailbox(owner_id=owner.id, address=f"{lp}@{DEST_DOMAIN}", verified_at=utcnow(),
                              verified_by=BY_ADMIN))
    finally:
        db.dispose()


@lru_cache(maxsize=1)
def sender_key() -> SigningKey:
    """The sending domain's DKIM key (RSA-2048, the common case), one per bench process."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SigningKey(SENDER_DOMAIN, SENDER_SELECTOR, "rsa", pem)


def key_record(key: SigningKey) -> str:
    public = serialization.load_pem_private_key(key.private_pem, password=None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def signed(size: int, recipient: str, seq: int) -> bytes:
    raw = message(size, SENDER, recipient, seq)
    return dkim_signature(raw, sender_key()) + raw


class Mailferry(Path):
    def __init__(self, sink_port: int, recipients: int, workdir: str, db: str = "sqlite", workers: int = 2,
                 smtp_processes: int = 2, dkim: str = "rsa", authenticated: bool = False):
        super().__init__(sink_port, recipients)
        self.authenticated = authenticated
        self.name = f"mailferry-{db}" + ("+auth+rspamd" if authenticated else "")
        self.db_kind = db
        self.workdir = os.path.join(workdir, self.name)
        self.workers = workers
        self.smtp_processes = smtp_processes
        self.dkim = dkim
        self.port = free_port()
        self.redis: RedisServer | None = None
        self.database: BenchDatabase | None = None
        self.dns: DnsServer | None = None
        self.rspamd: RspamdServer | None = None
        self._messages: dict[int, list[bytes]] = {}
        self.smtp: procs.Child | None = None
        self.worker_children: list[procs.Child] = []
        self._profilers: list[tuple[str, subprocess.Popen, str]] = []

    @property
    def entry_port(self) -> int:
        return self.port

    def env(self) -> dict:
        return procs.python_env(
            DATABASE_URL=self.database.url, REDIS_URL=self.redis.url, SECRET_KEY=SECRET_KEY,
            SMTP_HOSTNAME="mx.alias.bench.test", SMTP_LISTEN=f"127.0.0.1:{self.port}",
            SMTP_SERVER_PROCESSES=self.smtp_processes, DNS_NAMESERVERS=self.dns.nameservers,
            SMTP_DIRECT_PORT=self.sink_port, SMTP_ENABLE_DKIM="true", LOG_LEVEL="WARNING",
            ALLOW_PRIVATE_DESTINATIONS="true",  # the destination MX is a sink on loopback
            # every client is 127.0.0.1: no per-address session limit
            SMTP_MAX_CONNECTIONS_PER_IP=0,
            # one destination domain on loopback: Postfix's default destination concurrency, no rate limit
            DIRECT_MAX_CONNECTIONS_PER_DOMAIN=20, DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE=100000,
            # all the load comes from 127.0.0.1 to a few aliases: the inbound rate limits would refuse most of it
            RATE_LIMIT_IP_PER_MINUTE=0, RATE_LIMIT_ALIAS_PER_HOUR=0, RATE_LIMIT_DOMAIN_PER_HOUR=0,
            REFUSED_RCPT_LIMIT_PER_HOUR=0,
            INBOUND_AUTHENTICATION="true" if self.authenticated else "false",
            RSPAMD_URL=self.rspamd.url if self.rspamd else "",
        )

    def message_set(self, size: int) -> list[bytes] | None:
        """Authenticated: one message per recipient, DKIM-signed once (signing per message would load the
        load generator, on the same machine, with what we measure)."""
        if not self.authenticated:
            return None
        if size not in self._messages:
            self._messages[size] = [signed(size, rcpt, i) for i, rcpt in enumerate(self.recipients)]
        return self._messages[size]

    def source_file(self, size: int, workdir: str) -> str | None:
        """Authenticated: smtp-source sends a signed message too (its -F adds one empty line at the end,
        which no DKIM body canonicalisation counts)."""
        if not self.authenticated:
            return None
        path = os.path.join(self.workdir, f"signed-{size}.eml")
        with open(path, "wb") as f:
            f.write(signed(size, self.recipients[0], 0).replace(b"\r\n", b"\n"))
        return path

    def start(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        self.database = BenchDatabase(self.db_kind, self.workdir)
        seed(self.database.url, self.locals, self.dkim)
        self.dns = DnsServer().start()
        self.dns.add(DEST_DOMAIN, "MX", f"10 {MX_HOST}.", ttl=3600)
        self.dns.add(MX_HOST, "A", "127.0.0.1", ttl=3600)
        if self.authenticated:
            self.dns.add(SENDER_DOMAIN, "TXT", "v=spf1 ip4:127.0.0.1 -all", ttl=3600)
            self.dns.add(f"{SENDER_SELECTOR}._domainkey.{SENDER_DOMAIN}", "TXT", key_record(sender_key()), ttl=3600)
            self.dns.add(f"_dmarc.{SENDER_DOMAIN}", "TXT", "v=DMARC1; p=reject", ttl=3600)
            self.rspamd = RspamdServer(os.path.join(self.workdir, "rspamd"), dns_nameservers=self.dns.nameservers)
            os.makedirs(self.rspamd.workdir, exist_ok=True)
            self.rspamd.start()
        env = self.env()
        self.smtp = procs.start_listening("smtp", [sys.executable, "-m", "smtp"], self.workdir, self.port, env=env)
        for i in range(self.workers):
            self.worker_children.append(procs.start(f"worker{i}", [sys.executable, os.path.join(procs.ROOT, "worker.py")],
                                                    self.workdir, env=env))
        time.sleep(1.0)  # the workers register with Redis and run their first reconcile
        dead = [c for c in [self.smtp, *self.worker_children] if not c.alive()]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited at start:\n{dead[0].tail()}")

    def stop(self) -> None:
        self.stop_profile()
        for child in [*self.worker_children, self.smtp]:
            if child is not None:
                child.stop()
        self.worker_children, self.smtp = [], None
        if self.rspamd:
            self.rspamd.stop()
            self.rspamd = None
        if self.dns:
            self.dns.stop()
            self.dns = None
        if self.redis:
            self.redis.stop()
            self.redis = None
        if self.database:
            self.database.drop()
            self.database = None

    def processes(self) -> dict[str, int]:
        out = {}
        if self.smtp and self.smtp.alive():
            out["smtp"] = self.smtp.pid
        out.update({c.name: c.pid for c in self.worker_children if c.alive()})
        if self.redis and self.redis.proc:
            out["redis"] = self.redis.proc.pid
        if self.rspamd and self.rspamd.running:
            out["rspamd"] = self.rspamd.proc.pid  # its workers are its children: counted with it
        return out

    def stages(self, since) -> dict | None:
        """From the database: received -> enqueued (spool commit to RQ), received -> delivered, and the
        delivery states of the messages received since `since`."""
        db = Database(self.database.url)
        try:
            with db.session() as s:
                rows = s.execute(
                    select(Message.received_at, Message.enqueued_at, Delivery.delivered_at, Delivery.state)
                    .join(Delivery, Delivery.message_id == Message.id).where(Message.received_at >= since)
                ).all()
        finally:
            db.dispose()
        states = Counter(state for *_, state in rows)
        spool = [(e - r).total_seconds() for r, e, _, _ in rows if e]
        delivered = [(d - r).total_seconds() for r, _, d, _ in rows if d]
        return {"deliveries": len(rows), "states": dict(states), "received_to_enqueued_ms": latency_ms(spool),
                "received_to_delivered_ms": latency_ms(delivered)}

    def smtp_pids(self) -> list[int]:
        return [self.smtp.pid] if self.smtp else []

    def idle_rss(self, connections: int) -> dict:
        """RSS growth of the SMTP server processes with `connections` idle sessions open (after EHLO)."""

        async def measure() -> dict:
            before = procs.tree_rss(self.smtp_pids())
            sessions = await open_idle("127.0.0.1", self.port, connections)
            await asyncio.sleep(1.0)
            after = procs.tree_rss(self.smtp_pids())
            await close_all(sessions)
            return {"connections": connections, "before_bytes": before, "after_bytes": after,
                    "growth_bytes": after - before, "per_connection_bytes": round((after - before) / connections)}

        try:
            return asyncio.run(measure())
        except Exception as exc:  # too many open files, a refused connection: say so instead of a figure
            return {"connections": connections, "error": f"{type(exc).__name__}: {exc}"}

    # ---- py-spy ----
    def start_profile(self, label: str) -> None:
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.access(spy, os.X_OK):
            return
        import psutil

        targets = {}
        if self.smtp:
            children = psutil.Process(self.smtp.pid).children()
            targets["smtp"] = children[0].pid if children else self.smtp.pid
        if self.worker_children:
            targets["worker"] = self.worker_children[0].pid
        for role, pid in targets.items():
            out = os.path.join(self.workdir, f"{label}-{role}.txt")
            proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--output", out,
                                     "--rate", "200", "--nonblocking"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._profilers.append((role, proc, out))

    def stop_profile(self) -> dict | None:
        if not self._profilers:
            return None
        summary = {}
        for role, proc, out in self._profilers:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            summary[role] = summarize_profile(out)
        self._profilers = []
        return summary


def summarize_profile(path: str, top: int = 25) -> dict:
    """From py-spy's raw (collapsed) stacks: samples, the functions most often on top of the stack (self) and
    most often anywhere on it (inclusive), and where the raw file was copied."""
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                stack, _, count = line.rstrip().rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                frames = stack.split(";")
                total += n
                self_time[frames[-1]] += n
                for frame in set(frames):
                    inclusive[frame] += n
    except OSError:
        return {"samples": 0}
    copy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "profile-" + os.path.basename(path))
    shutil.copyfile(path, copy)
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total, "raw": copy,
            "self": [[frame, pct(c)] for frame, c in self_time.most_common(top)],
            "inclusive": [[frame, pct(c)] for frame, c in inclusive.most_common(top)]}
