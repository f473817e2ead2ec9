"""The one place configuration is read: the environment and `.env`, parsed and validated at start.

Every setting is declared once in SETTINGS (name, parser, default, help); `.env.example` is checked
against this table by the tests so the documentation cannot drift from the code.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from .control_chars import PROBLEM, first_control_character
from .secret_keys import HOW_TO_MAKE, MIN_SECRET_LENGTH, new_secret_key, weakness

DELIVERY_MODES = ("direct", "relay", "hybrid", "smart")
DMARC_REJECT_ACTIONS = ("reject", "rewrite", "quarantine")
DMARC_QUARANTINE_ACTIONS = ("quarantine", "reject", "forward")
SPAM_ACTIONS = ("forward", "quarantine", "reject")
ENVIRONMENTS = ("production", "development")
LOG_FORMATS = ("json", "text")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """One bad setting: `str()` is the single line shown to the admin."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name


# ---- parsers: each takes the raw string and returns the value or raises ValueError(problem) ----

def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def parse_int(raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"must be at least {minimum}, got {value}")
    return value


def parse_port(raw: str) -> int:
    value = parse_int(raw, 0)
    if value > 65535:
        raise ValueError(f"port must be 0-65535, got {value}")
    return value


def parse_niceness(raw: str) -> int:
    value = parse_int(raw, 0)
    if value > 19:
        raise ValueError(f"niceness must be 0-19, got {value}")
    return value


def parse_duration(raw: str) -> int:
    """'90', '90s', '5m', '2h', '5d' -> seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise ValueError(f"expected a duration like 30s, 5m, 2h or 5d, got {raw!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_duration_at_least(raw: str, minimum: int) -> int:
    value = parse_duration(raw)
    if value < minimum:
        raise ValueError(f"must be at least {minimum}s, got {value}s")
    return value


def parse_schedule(raw: str) -> tuple[int, ...]:
    parts = [p for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("expected a comma-separated list of durations, e.g. 1m,5m,1h")
    steps = tuple(parse_duration(p) for p in parts)
    if any(s <= 0 for s in steps):
        raise ValueError("every retry interval must be longer than 0s")
    return steps


def parse_listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {raw!r}")
    return host.strip("[]"), parse_port(port)


def parse_metrics_listen(raw: str) -> tuple[str, int] | None:
    """Empty = no metrics port; else host:port, a fixed port (Prometheus scrapes a known address)."""
    if not raw.strip():
        return None
    host, port = parse_listen(raw)
    if port == 0:
        raise ValueError("needs a fixed port (Prometheus must know where to scrape), got port 0")
    return host, port


def parse_networks(raw: str) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (e.g. 10.0.0.5 or 172.16.0.0/12)") from None
    return tuple(networks)


def parse_nameservers(raw: str) -> tuple[tuple[str, int], ...]:
    servers = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        if item.count(":") == 1:
            host, port = item.split(":")
            servers.append((host, parse_port(port)))
        else:  # a bare IPv4/IPv6 address, or [v6]:port
            m = re.match(r"^\[(.+)\]:(\d+)$", item)
            servers.append((m.group(1), parse_port(m.group(2))) if m else (item, 53))
    return tuple(servers)


def parse_mode(raw: str) -> str:
    value = raw.strip().lower()
    if value not in DELIVERY_MODES:
        raise ValueError(f"must be one of {', '.join(DELIVERY_MODES)}, got {raw!r}")
    return value


def parse_choice(raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
    return value


def parse_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^http://[^/:\s]+(:\d+)?$", value):
        raise ValueError(f"must be http://host:port, got {raw!r}")
    return value


def parse_public_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^https?://[^/\s:]+(:\d+)?(/\S*)?$", value):
        raise ValueError(f"must be an http:// or https:// address such as https://mail.example.com, got {raw!r}")
    return value


def parse_mail_from(raw: str) -> str:
    value = raw.strip()
    if value and not re.match(r"^(?:[^<>@]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$", value):
        raise ValueError(f"must be an address or Name <address>, got {raw!r}")
    return value


def parse_relays(raw: str) -> tuple[dict, ...]:
    if not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) and r.get("host") for r in data):
        raise ValueError('expected a JSON list of objects each with a "host", e.g. [{"host": "smtp.example.com"}]')
    for i, relay in enumerate(data):
        for key, value in relay.items():
            found = isinstance(value, str) and first_control_character(value)
            if found:
                raise ValueError(f"relay {i + 1}: {key} {PROBLEM} (found {found})")
    return tuple(data)


def parse_file(raw: str) -> str:
    path = raw.strip()
    if path and not os.path.isfile(path):
        raise ValueError(f"file not found: {path}")
    return path


def parse_str(raw: str) -> str:
    return raw.strip()


def parse_log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: str
    help: str


S = Setting
SETTINGS: tuple[Setting, ...] = (
    S("SECRET_KEY", parse_str, "", f"Signs sessions, keys the SRS hash and derives the key that encrypts DKIM private keys at rest: a random value of at least {MIN_SECRET_LENGTH} characters, without which nothing starts in production; {HOW_TO_MAKE}. Changing it logs everyone out, makes stored DKIM keys unreadable and every two-factor set-up unusable (`flask --app wsgi reset-2fa`), and voids the links in confirmation and suspension mail."),
    S("MAILFERRY_ENV", lambda r: parse_choice(r, ENVIRONMENTS), "production", "production or development. development (`make run` sets it) starts without a strong SECRET_KEY, using a random one for that process, and `make run` writes one into .env on its first run."),
    S("DATABASE_URL", parse_str, "sqlite:///var/mailferry.db", "SQLAlchemy URL: sqlite:///path or postgresql://user@host/db."),
    S("REDIS_URL", parse_str, "redis://127.0.0.1:6379/0", "Redis for the RQ job queue, rate limits and circuit breakers."),
    S("RQ_QUEUE", parse_str, "mailferry", "Name of the RQ queue the SMTP server enqueues deliveries on."),
    S("LOG_LEVEL", parse_log_level, "INFO", "DEBUG, INFO, WARNING or ERROR. Logs are one JSON object per line on stderr."),
    S("LOG_FORMAT", lambda r: parse_choice(r, LOG_FORMATS), "json", "json (one object per line, for log collectors) or text (one readable line per entry with its fields, for a human at a terminal)."),
    S("METRICS_LISTEN", parse_metrics_listen, "", "host:port where `python -m smtp` serves Prometheus /metrics and /readyz (e.g. 127.0.0.1:9101). With SMTP_SERVER_PROCESSES > 1 the parent process serves it, summing its servers (multiprocess mode). Empty = off."),
    S("WORKER_METRICS_LISTEN", parse_metrics_listen, "", "host:port where `python worker.py` serves Prometheus /metrics and /readyz (e.g. 127.0.0.1:9102). Each worker process needs a port of its own: several workers on one host get one setting each. Empty = off."),
    S("METRICS_ALLOWED_IPS", parse_networks, "127.0.0.1/32,::1/128", "Comma list of addresses or networks allowed to read the dashboard's /metrics without a token (a Prometheus server); from anywhere else it needs an admin's API token (Authorization: Bearer)."),
    S("WORKER_HEARTBEAT_MAX_AGE", lambda r: parse_duration_at_least(r, 20), "60s", "A delivery worker whose last heartbeat (every 10 s, in Redis) is older than this counts as gone for /readyz and `python worker.py --check`."),
    # inbound
    S("SMTP_LISTEN", parse_listen, "0.0.0.0:25", "host:port the inbound SMTP server listens on."),
    S("SMTP_HOSTNAME", parse_str, "", "Our host name: SMTP banner, EHLO, the MX target domains publish. Empty = this machine's FQDN."),
    S("SMTP_MAX_MESSAGE_SIZE", lambda r: parse_int(r, 1024), "26214400", "Largest message accepted, in bytes (advertised with SIZE)."),
    S("SMTP_MAX_RECIPIENTS", lambda r: parse_int(r, 1), "100", "Most RCPT TO accepted per message."),
    S("SMTP_MAX_CONNECTIONS_PER_IP", lambda r: parse_int(r, 0), "50", "Concurrent inbound sessions one client address may hold per SMTP process (over it: 421 4.7.0); 0 = no limit."),
    S("SMTP_IDLE_TIMEOUT", lambda r: parse_int(r, 1), "300", "Seconds an inbound session may stay idle before it is closed."),
    S("SMTP_COMMAND_TIMEOUT", lambda r: parse_int(r, 1), "60", "Seconds an inbound command line may take from its first byte to its end (then 421 4.4.2 and the session closes): a client trickling bytes cannot hold a session."),
    S("SMTP_DATA_TIMEOUT", lambda r: parse_int(r, 1), "300", "Seconds an inbound DATA section may take, plus one second per 10 KiB received (so a big message that keeps streaming is not cut off); then 421 4.4.2 and the session closes."),
    S("SMTP_MAX_RECEIVED_HEADERS", lambda r: parse_int(r, 1), "30", "More Received headers than this is a mail loop (554 5.4.6)."),
    S("SMTP_TLS_CERT", parse_file, "", "PEM certificate for STARTTLS on the inbound server (with SMTP_TLS_KEY). Empty = no STARTTLS."),
    S("SMTP_TLS_KEY", parse_file, "", "PEM private key for SMTP_TLS_CERT."),
    S("SMTP_SERVER_PROCESSES", lambda r: parse_int(r, 1), "1", "Processes `python -m smtp` runs on the same port (SO_REUSEPORT)."),
    S("SMTP_RECIPIENT_CACHE_TTL", lambda r: parse_int(r, 0), "10", "Seconds a RCPT lookup (alias found or refused) is cached per process; 0 = no cache."),
    # delivery
    S("SMTP_DELIVERY_MODE", parse_mode, "direct", "direct (recipient's MX), relay (SMTP relays), hybrid (direct, relay fallback) or smart (per destination by success rate)."),
    S("SMTP_ENABLE_DKIM", parse_bool, "true", "Sign forwarded mail with the alias domain's active DKIM key."),
    S("SMTP_ENABLE_ARC", parse_bool, "true", "Add an ARC set (RFC 8617) sealing our SPF/DKIM/DMARC results with the alias domain's RSA key, so receivers that trust forwarders (Gmail, Outlook) can credit the sender's authentication when the forward broke it."),
    S("SMTP_DIRECT_PORT", parse_port, "25", "Port of destination MX hosts (25 on the internet; tests use loopback sinks)."),
    S("SMTP_REQUIRE_TLS", parse_bool, "false", "Direct delivery refuses MX hosts that do not offer STARTTLS (otherwise TLS is opportunistic)."),
    S("ALLOW_PRIVATE_DESTINATIONS", parse_bool, "false", "Let direct delivery (and other connections to hosts named in DNS) reach loopback, private, link-local, CGNAT and metadata addresses (127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, ::1, fc00::/7, fe80::/10...). Off on the internet: an MX on such an address is skipped and the delivery deferred. Development and tests turn it on. Relays (SMTP_HOST, SMTP_RELAYS) are trusted configuration and may be private either way."),
    S("SMTP_CONNECT_TIMEOUT", lambda r: parse_int(r, 1), "30", "Seconds to wait for an outbound SMTP connection or reply."),
    S("SMTP_HOST", parse_str, "", "Primary relay host (relay/hybrid/smart modes), e.g. smtp.gmail.com."),
    S("SMTP_PORT", parse_port, "587", "Primary relay port."),
    S("SMTP_USER", parse_str, "", "Primary relay user name (AUTH PLAIN/LOGIN)."),
    S("SMTP_PASSWORD", parse_str, "", "Primary relay password. Never logged."),
    S("SMTP_USE_TLS", parse_bool, "true", "STARTTLS to the primary relay (port 587)."),
    S("SMTP_USE_SSL", parse_bool, "false", "Implicit TLS to the primary relay (port 465)."),
    S("SMTP_FROM_POLICY", parse_str, "keep", "Primary relay sender policy: keep (SRS envelope, headers untouched) or rewrite (envelope and From become the relay account)."),
    S("SMTP_RELAYS", parse_relays, "", "Further relays tried in order after SMTP_HOST: JSON list of {host, port, user, password, use_tls, use_ssl, from_policy}."),
    S("SMTP_RELAY_CA_FILE", parse_file, "", "Extra CA certificates (PEM) trusted for relay connections."),
    S("RELAY_FAILURE_THRESHOLD", lambda r: parse_int(r, 1), "5", "Consecutive failures after which a relay is skipped (circuit open)."),
    S("RELAY_COOLDOWN", parse_duration, "5m", "How long an open relay circuit stays skipped before it is tried again."),
    S("DIRECT_MAX_CONNECTIONS_PER_DOMAIN", lambda r: parse_int(r, 1), "5", "Concurrent outbound connections per destination domain, across all workers."),
    S("DIRECT_MAX_NEW_CONNECTIONS_PER_MINUTE", lambda r: parse_int(r, 1), "10", "New outbound connections per destination domain per minute, across all workers (a reused connection is not a new one)."),
    S("DNS_NAMESERVERS", parse_nameservers, "", "Comma list of host[:port] resolvers for MX and verification lookups. Empty = system resolver."),
    S("DNS_TIMEOUT", lambda r: parse_int(r, 1), "5", "Seconds before a DNS lookup gives up."),
    S("MX_CACHE_MIN_TTL", lambda r: parse_int(r, 0), "60", "Lower clamp, in seconds, on how long an MX answer is cached."),
    S("MX_CACHE_MAX_TTL", lambda r: parse_int(r, 1), "3600", "Upper clamp, in seconds, on how long an MX answer is cached."),
    S("SRS_SECRET", parse_str, "", f"Key of the SRS hash (at least {MIN_SECRET_LENGTH} characters). Empty = derived from SECRET_KEY. Changing it invalidates bounce addresses in flight."),
    S("SRS_MAX_AGE_DAYS", lambda r: parse_int(r, 1), "21", "Days an SRS address stays valid for bounces."),
    S("RETRY_SCHEDULE", parse_schedule, "1m,5m,15m,30m,1h,2h,4h", "Waits between delivery attempts (s/m/h/d); the last one repeats."),
    S("MAX_QUEUE_LIFETIME", parse_duration, "5d", "How long a deferred message is retried before it bounces."),
    S("DELIVERY_LEASE", parse_duration, "5m", "How long a worker owns a message; an expired lease (crashed worker) is retried."),
    S("DELIVERY_BATCH", lambda r: parse_int(r, 1), "20", "Most messages one worker job delivers: it also takes jobs waiting in the queue (1 = one per job)."),
    S("DELIVERY_ASYNC_COMMIT", parse_bool, "false", "Workers commit delivery outcomes without waiting for the WAL flush (PostgreSQL synchronous_commit=off, SQLite synchronous=NORMAL): more throughput under a backlog, but a crash of the database server or a power cut can forget the last outcomes and those messages are delivered again. Accepted mail is always committed durably before the 250."),
    S("WORKER_NICE", parse_niceness, "5", "Niceness (0-19) a worker adds to its own CPU priority, so accepting mail (latency a sender waits on) goes before delivering it from the queue. 0 = same priority."),
    S("DELIVERY_BATCH_WAIT_MS", lambda r: parse_int(r, 0), "20", "Milliseconds a job whose batch is under a quarter full waits, once, for more messages to deliver with it (0 = never wait)."),
    S("RECONCILE_INTERVAL", parse_duration, "1m", "How often the worker re-enqueues messages whose job was lost."),
    # inbound trust: decided before the 250
    S("INBOUND_AUTHENTICATION", parse_bool, "true", "Check SPF, DKIM, DMARC and ARC of every inbound message before the 250 and add our Authentication-Results to each forwarded copy. Turn off only behind a filter that already does."),
    S("INBOUND_DNS_BUDGET", parse_duration, "15s", "Total time the DNS lookups of one inbound message may take (SPF, DKIM keys, DMARC); over it the sender is told 451 4.7.0 and retries."),
    S("DMARC_REJECT_POLICY", lambda r: parse_choice(r, DMARC_REJECT_ACTIONS), "reject", "Default for a DMARC failure of a p=reject sender: reject (550 5.7.1 at end of DATA), rewrite (forward with From rewritten to the alias) or quarantine. Each domain may override it."),
    S("DMARC_QUARANTINE_POLICY", lambda r: parse_choice(r, DMARC_QUARANTINE_ACTIONS), "quarantine", "Default for a DMARC failure of a p=quarantine sender, and for an SPF fail (-all) without an aligned DKIM pass: quarantine, reject or forward. Each domain may override it."),
    S("RSPAMD_URL", parse_url, "", "rspamd's normal worker (e.g. http://127.0.0.1:11333): every message is scanned over /checkv2 before the 250. Empty = no spam filtering."),
    S("RSPAMD_TIMEOUT", parse_duration, "10s", "How long one rspamd scan may take before the message is treated as unscanned."),
    S("RSPAMD_FAIL_OPEN", parse_bool, "false", "When rspamd is unreachable or slow: false = 451 4.7.1 (the sender retries), true = forward unscanned and log it."),
    S("SPAM_ACTION", lambda r: parse_choice(r, SPAM_ACTIONS), "quarantine", "Default for mail rspamd flags (add header / rewrite subject, or a score over the domain's threshold): forward (with X-Spam-* headers), quarantine or reject. Each domain may override it."),
    S("QUARANTINE_DAYS", lambda r: parse_int(r, 1), "14", "Days a quarantined message is kept for its owner to release or delete; then it is purged."),
    S("DSN_MAX_PER_SENDER_DOMAIN_PER_HOUR", lambda r: parse_int(r, 0), "20", "Most bounces (DSNs) sent to one sender domain per hour; over it the failure is recorded and no DSN is sent. 0 = no DSNs at all."),
    S("RATE_LIMIT_IP_PER_MINUTE", lambda r: parse_int(r, 0), "120", "Messages one client address may send per minute, across every SMTP process (450 4.7.1 over it); 0 = off."),
    S("RATE_LIMIT_ALIAS_PER_HOUR", lambda r: parse_int(r, 0), "600", "Messages one alias may receive per hour (counted at RCPT TO), across every SMTP process (450 4.7.1 over it); 0 = off."),
    S("RATE_LIMIT_DOMAIN_PER_HOUR", lambda r: parse_int(r, 0), "3000", "Messages one domain's aliases may receive per hour (counted at RCPT TO), across every SMTP process (450 4.7.1 over it); 0 = off."),
    S("REFUSED_RCPT_LIMIT_PER_HOUR", lambda r: parse_int(r, 0), "100", "Refused recipients one client address may collect per hour across connections (directory harvesting); over it its sessions are closed with 421. 0 = off."),
    # dashboard
    S("WEB_LISTEN", parse_listen, "127.0.0.1:8000", "host:port of the dashboard for `make run`."),
    S("SIGNUP_ENABLED", parse_bool, "true", "Anyone may create an owner account from the login page."),
    S("PUBLIC_URL", parse_public_url, "", "The dashboard's address as users reach it (e.g. https://mail.example.com), used in the links of the mail Mailferry sends (confirmations, re-enable links). Empty = http://WEB_LISTEN when it is a loopback address, else https://SMTP_HOSTNAME."),
    # protecting recipients and owners
    S("SYSTEM_MAIL_FROM", parse_mail_from, "", "From of the mail Mailferry itself sends (confirmations, notifications, delay warnings). Empty = Mailferry <postmaster@SMTP_HOSTNAME>. Signed with DKIM when a domain here has a key for that address's domain."),
    S("REQUIRE_VERIFIED_DESTINATIONS", parse_bool, "true", "A destination receives forwarded mail only once its owner clicked the confirmation link sent to it (or an admin marked it verified). false: any address an alias names receives mail, for a closed single-user setup."),
    S("CONFIRMATION_LINK_MAX_AGE", parse_duration, "3d", "How long a destination or sign-up confirmation link stays valid; a new one can be sent from the dashboard."),
    S("BOUNCE_DISABLE_THRESHOLD", lambda r: parse_int(r, 1), "12", "More permanent failures than this to one destination within 24 hours suspend the destination (its aliases keep working for their other destinations) and tell its owner; three 'user unknown' (5.1.1) replies in a row suspend it at once."),
    S("DELAY_WARNING_TIME", parse_duration, "4h", "When mail for an owner's destination is still undelivered after this long, the owner (never the sender) gets one 'still trying' message."),
    S("DKIM_ROTATION_REMINDER_DAYS", lambda r: parse_int(r, 0), "180", "Remind a domain's owner to rotate its DKIM key once the active key is this many days old; 0 = never."),
    S("RETENTION_DAYS", lambda r: parse_int(r, 0), "7", "Days the content (raw bytes) of a message is kept after it reached a final state (delivered, bounced, given up); never deleted before. 0 = deleted at the next cleanup after the final state."),
    S("LOG_RETENTION_DAYS", lambda r: parse_int(r, 1), "30", "Days a message's metadata (envelope, states, attempts) is kept after its final state; then it is deleted. At least RETENTION_DAYS."),
    S("REQUIRE_ADMIN_2FA", parse_bool, "false", "Admins must enrol a TOTP authenticator: until they do, every dashboard page sends them to the two-factor set-up."),
    S("TRUSTED_PROXIES", parse_networks, "", "Comma list of the reverse proxies' addresses or networks (e.g. 127.0.0.1,10.0.0.0/8). Only a request from one of them has its X-Forwarded-For (the client address the login limiter and the audit log use), X-Forwarded-Proto and X-Forwarded-Host believed; from anywhere else they are ignored. Empty = no proxy is trusted."),
    S("SESSION_COOKIE_SECURE", parse_bool, "false", "Send the session cookie over HTTPS only (turn on behind TLS)."),
    S("SMTP_PUBLIC_IPS", parse_str, "", "Comma list of this server's public addresses, used to evaluate SPF. Empty = A/AAAA of SMTP_HOSTNAME."),
    S("REVERIFY_INTERVAL", parse_duration, "1d", "How often the worker re-checks every domain's DNS records and records which one broke."),
    S("LOGIN_RATE_LIMIT", lambda r: parse_int(r, 1), "10", "Failed dashboard logins allowed for one account from one client address within LOGIN_RATE_WINDOW (then that pair waits until the window ends); past as many failures from one address across accounts, each further failure makes the address wait, doubling from 1 s up to 5 minutes; also the wrong second-factor codes an account may take. Kept in Redis."),
    S("LOGIN_RATE_WINDOW", parse_duration, "15m", "Window of LOGIN_RATE_LIMIT; a blocked login may try again when it has passed (the page says how long)."),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _attr(name: str) -> str:
    return name.lower()


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        try:
            return self.values[item.upper()]
        except KeyError:
            raise AttributeError(item) from None

    def replace(self, **changes: Any) -> "Settings":
        return Settings({**self.values, **{k.upper(): v for k, v in changes.items()}})

    @property
    def relays(self) -> tuple[dict, ...]:
        """All relays in failover order: the primary SMTP_HOST one first, then SMTP_RELAYS."""
        primary = ()
        if self.SMTP_HOST:
            primary = ({
                "name": "primary", "host": self.SMTP_HOST, "port": self.SMTP_PORT,
                "user": self.SMTP_USER, "password": self.SMTP_PASSWORD,
                "use_tls": self.SMTP_USE_TLS, "use_ssl": self.SMTP_USE_SSL,
                "from_policy": self.SMTP_FROM_POLICY,
            },)
        extra = tuple({"name": r.get("name", f"relay{i + 1}"), **r} for i, r in enumerate(self.SMTP_RELAYS))
        return primary + extra

    @property
    def public_url(self) -> str:
        """Base of the links in the mail we send (PUBLIC_URL, or a guess from WEB_LISTEN / SMTP_HOSTNAME)."""
        if self.PUBLIC_URL:
            return self.PUBLIC_URL
        host, port = self.WEB_LISTEN
        if host.startswith("127.") or host in ("localhost", "::1"):
            return f"http://{host}:{port}"
        return f"https://{self.SMTP_HOSTNAME}"

    @property
    def system_mail_from(self) -> tuple[str, str]:
        """(display name, address) of the mail Mailferry itself sends."""
        if not self.SYSTEM_MAIL_FROM:
            return "Mailferry", f"postmaster@{self.SMTP_HOSTNAME}"
        name, _, rest = self.SYSTEM_MAIL_FROM.partition("<")
        if not rest:
            return "", self.SYSTEM_MAIL_FROM
        return name.strip().strip('"'), rest.rstrip(">").strip()

    @property
    def srs_secret(self) -> str:
        return self.SRS_SECRET or f"srs:{self.SECRET_KEY}"


def _check_together(values: dict) -> None:
    if bool(values["SMTP_TLS_CERT"]) != bool(values["SMTP_TLS_KEY"]):
        missing = "SMTP_TLS_KEY" if values["SMTP_TLS_CERT"] else "SMTP_TLS_CERT"
        raise SettingsError(missing, "SMTP_TLS_CERT and SMTP_TLS_KEY must be set together")
    if values["SMTP_USE_TLS"] and values["SMTP_USE_SSL"] and values["SMTP_HOST"]:
        raise SettingsError("SMTP_USE_SSL", "choose SMTP_USE_TLS (STARTTLS) or SMTP_USE_SSL (implicit TLS), not both")
    if values["SMTP_FROM_POLICY"] not in ("keep", "rewrite"):
        raise SettingsError("SMTP_FROM_POLICY", f"must be keep or rewrite, got {values['SMTP_FROM_POLICY']!r}")
    names = ["primary"] if values["SMTP_HOST"] else []
    for i, relay in enumerate(values["SMTP_RELAYS"]):
        if relay.get("from_policy", "keep") not in ("keep", "rewrite"):
            raise SettingsError("SMTP_RELAYS", f"relay {i + 1}: from_policy must be keep or rewrite")
        name = relay.get("name", f"relay{i + 1}")
        if name in names:
            raise SettingsError("SMTP_RELAYS", f"relay {i + 1}: the name {name!r} is taken; names must be unique")
        names.append(name)
    if values["SMTP_DELIVERY_MODE"] in ("relay", "hybrid") and not (values["SMTP_HOST"] or values["SMTP_RELAYS"]):
        raise SettingsError("SMTP_DELIVERY_MODE", f"{values['SMTP_DELIVERY_MODE']} mode needs a relay: set SMTP_HOST or SMTP_RELAYS")
    if values["LOG_RETENTION_DAYS"] < values["RETENTION_DAYS"]:
        raise SettingsError("LOG_RETENTION_DAYS", "must be at least RETENTION_DAYS (a message's record outlives its content)")
    if values["MX_CACHE_MIN_TTL"] > values["MX_CACHE_MAX_TTL"]:
        raise SettingsError("MX_CACHE_MIN_TTL", "must not be larger than MX_CACHE_MAX_TTL")
    if not values["DATABASE_URL"].startswith(("sqlite:", "postgresql:", "postgresql+psycopg2:", "postgres:")):
        raise SettingsError("DATABASE_URL", "must start with sqlite:// or postgresql://")
    if not values["REDIS_URL"].startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL", "must start with redis://, rediss:// or unix://")


def read_env_file(path: str) -> dict[str, str]:
    """The variables of a `.env` file; a line that does not parse, or a misspelt setting name, is an error."""
    with open(path, encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                line = binding.original.string.strip()[:60]
                raise SettingsError(path, f"line {binding.original.line}: cannot parse {line!r} (expected NAME=value)")
            if binding.key and binding.key not in _BY_NAME:
                close = difflib.get_close_matches(binding.key, _BY_NAME, n=1, cutoff=0.85)
                if close:
                    raise SettingsError(binding.key, f"unknown setting in {path} (line {binding.original.line}); did you mean {close[0]}?")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Parse the environment (over `.env`) into Settings; raise SettingsError on the first bad value."""
    source: dict[str, str] = {}
    if env_file and os.path.exists(env_file):
        source.update(read_env_file(env_file))
    source.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = source.get(setting.name, setting.default)
        found = first_control_character(raw.strip())
        if found:  # host names, users and passwords reach SMTP commands: a line break would add one
            raise SettingsError(setting.name, f"{PROBLEM} (found {found})")
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise SettingsError(setting.name, str(exc)) from None
    if not values["SMTP_HOSTNAME"]:
        values["SMTP_HOSTNAME"] = socket.getfqdn()
    if values["DATABASE_URL"].startswith("postgres://"):
        values["DATABASE_URL"] = "postgresql://" + values["DATABASE_URL"][len("postgres://"):]
    _check_together(values)
    _use_strong_secrets(values)
    return Settings(values)


def _use_strong_secrets(values: dict) -> None:
    """A weak SECRET_KEY or SRS_SECRET stops production; development replaces it with a random key for this
    process, so no mode derives sessions, SRS or the DKIM encryption key from a value anyone can know."""
    for name in ("SECRET_KEY", "SRS_SECRET"):
        if name == "SRS_SECRET" and not values[name]:
            continue  # derived from SECRET_KEY, checked above
        problem = weakness(values[name])
        if problem is None:
            continue
        if values["MAILFERRY_ENV"] != "development":
            raise SettingsError(name, f"{problem}; {HOW_TO_MAKE} (MAILFERRY_ENV=development runs with a throwaway key)")
        values[name] = new_secret_key()


def settings_or_exit(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """For entry points: a bad setting prints one line naming it and exits with code 2."""
    try:
        return load_settings(environ, env_file)
    except SettingsError as exc:
        print(f"mailferry: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
