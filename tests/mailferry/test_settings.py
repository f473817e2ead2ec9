"""Configuration: defaults, parsing, `.env` handling and the one-line error every entry point gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mailferry.settings import SETTINGS, SettingsError, load_settings
from tests.conftest import make_settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_parse():
    settings = load_settings({}, env_file=None)
    assert settings.SMTP_LISTEN == ("0.0.0.0", 25)
    assert settings.SMTP_MAX_MESSAGE_SIZE == 25 * 1024 * 1024
    assert settings.SMTP_DELIVERY_MODE == "direct"
    assert settings.RETRY_SCHEDULE == (60, 300, 900, 1800, 3600, 7200, 14400)
    assert settings.MAX_QUEUE_LIFETIME == 5 * 86400
    assert settings.DATABASE_URL == "sqlite:///var/mailferry.db"
    assert settings.SMTP_HOSTNAME  # falls back to this machine's name
    assert settings.ALLOW_PRIVATE_DESTINATIONS is False  # on the internet, no MX on a private address


@pytest.mark.parametrize("name, raw, expected", [
    ("SMTP_LISTEN", "127.0.0.1:2525", ("127.0.0.1", 2525)),
    ("SMTP_LISTEN", "[::1]:25", ("::1", 25)),
    ("DNS_NAMESERVERS", "127.0.0.1:5353, 10.0.0.1", (("127.0.0.1", 5353), ("10.0.0.1", 53))),
    ("RETRY_SCHEDULE", "30s, 2m,1h,1d", (30, 120, 3600, 86400)),
    ("MAX_QUEUE_LIFETIME", "2h", 7200),
    ("WORKER_NICE", "0", 0),
    ("SMTP_ENABLE_DKIM", "off", False),
    ("SMTP_DELIVERY_MODE", "Direct", "direct"),
    ("DATABASE_URL", "postgres://u@h/db", "postgresql://u@h/db"),
])
def test_values_parse(name, raw, expected):
    assert getattr(load_settings({name: raw}, env_file=None), name) == expected


@pytest.mark.parametrize("env, name, fragment", [
    ({"SMTP_PORT": "x"}, "SMTP_PORT", "expected an integer"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT", "0-65535"),
    ({"SMTP_LISTEN": "localhost"}, "SMTP_LISTEN", "host:port"),
    ({"SMTP_ENABLE_DKIM": "maybe"}, "SMTP_ENABLE_DKIM", "true/false"),
    ({"RETRY_SCHEDULE": "1m,soon"}, "RETRY_SCHEDULE", "duration"),
    ({"RETRY_SCHEDULE": "0s"}, "RETRY_SCHEDULE", "longer than 0s"),
    ({"SMTP_DELIVERY_MODE": "carrier-pigeon"}, "SMTP_DELIVERY_MODE", "direct, relay, hybrid, smart"),
    ({"SMTP_DELIVERY_MODE": "relay"}, "SMTP_DELIVERY_MODE", "needs a relay"),
    ({"SMTP_DELIVERY_MODE": "hybrid"}, "SMTP_DELIVERY_MODE", "needs a relay"),
    ({"SMTP_RELAYS": "[{"}, "SMTP_RELAYS", "not valid JSON"),
    ({"SMTP_RELAYS": '[{"port": 25}]'}, "SMTP_RELAYS", '"host"'),
    ({"SMTP_HOST": "a.test", "SMTP_RELAYS": '[{"host": "b.test", "name": "primary"}]'}, "SMTP_RELAYS", "unique"),
    ({"SMTP_TLS_CERT": "/nonexistent/cert.pem"}, "SMTP_TLS_CERT", "file not found"),
    ({"SMTP_FROM_POLICY": "maybe"}, "SMTP_FROM_POLICY", "keep or rewrite"),
    ({"SMTP_HOST": "relay.test", "SMTP_USE_SSL": "true"}, "SMTP_USE_SSL", "not both"),
    ({"MX_CACHE_MIN_TTL": "100", "MX_CACHE_MAX_TTL": "10"}, "MX_CACHE_MIN_TTL", "MX_CACHE_MAX_TTL"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL", "sqlite://"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL", "redis://"),
    ({"RSPAMD_URL": "127.0.0.1:11333"}, "RSPAMD_URL", "http://host:port"),
    ({"RSPAMD_URL": "https://rspamd.test:11333/checkv2"}, "RSPAMD_URL", "http://host:port"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "DEBUG"),
    ({"WORKER_NICE": "20"}, "WORKER_NICE", "0-19"),
])
def test_bad_values_name_the_setting(env, name, fragment):
    with pytest.raises(SettingsError) as info:
        load_settings(env, env_file=None)
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ")
    assert fragment in str(info.value)


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_HOSTNAME=mx.from-file.test\nRQ_QUEUE=fromfile\n# a comment\n\nexport LOG_LEVEL=warning\n")
    settings = load_settings({"RQ_QUEUE": "fromenv"}, env_file=str(env_file))
    assert settings.SMTP_HOSTNAME == "mx.from-file.test"
    assert settings.RQ_QUEUE == "fromenv"
    assert settings.LOG_LEVEL == "WARNING"


def test_env_file_with_a_broken_line_names_the_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_HOSTNAME=mx.test\nthis is not a setting\n")
    with pytest.raises(SettingsError, match="line 2: cannot parse"):
        load_settings({}, env_file=str(env_file))


def test_env_file_with_a_misspelt_setting_suggests_the_name(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_DELIVERY_MOD=relay\n")
    with pytest.raises(SettingsError, match="did you mean SMTP_DELIVERY_MODE"):
        load_settings({}, env_file=str(env_file))


def test_relays_list_primary_first():
    settings = make_settings(SMTP_HOST="smtp.one.test", SMTP_USER="u", SMTP_PASSWORD="p",
                             SMTP_RELAYS='[{"host": "smtp.two.test", "port": 465, "use_ssl": true}]')
    relays = settings.relays
    assert [r["host"] for r in relays] == ["smtp.one.test", "smtp.two.test"]
    assert relays[0]["name"] == "primary" and relays[1]["name"] == "relay1"


def test_every_setting_has_help_and_a_parseable_default():
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name
        setting.parse(setting.default)


def _run_entry(args: list[str], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [
    ["-m", "smtp"],
    ["worker.py"],
    ["-m", "flask", "--app", "wsgi", "routes"],
    ["-m", "alembic", "upgrade", "head"],
])
def test_entry_points_exit_2_with_one_line(args):
    result = _run_entry(args, {"SMTP_PORT": "not-a-port"}, ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["mailferry: configuration error: SMTP_PORT: expected an integer, got 'not-a-port'"]


def test_env_example_documents_every_setting_as_generated():
    from mailferry.env_example import render

    with open(os.path.join(ROOT, ".env.example"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == render(), "regenerate with: python -m mailferry.env_example > .env.example"
    for setting in SETTINGS:
        assert f"\n{setting.name}={setting.default}\n" in committed


def test_env_example_loads_as_an_env_file(tmp_path):
    example = os.path.join(ROOT, ".env.example")
    settings = load_settings({}, env_file=example)
    assert settings.SMTP_DELIVERY_MODE == "direct"
