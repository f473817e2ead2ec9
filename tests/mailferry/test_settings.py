"""Configuration: defaults, parsing, `.env` handling and the one-line error every entry point gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from harness.settings import TEST_SECRET_KEY, make_settings
from mailferry.secret_keys import MIN_SECRET_LENGTH, PUBLIC_SECRET_KEYS
from mailferry.settings import SETTINGS, SettingsError, load_settings

PUBLIC_KEY = sorted(PUBLIC_SECRET_KEYS)[0]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_parse():
    settings = load_settings({"SECRET_KEY": TEST_SECRET_KEY}, env_file=None)
    assert settings.MAILFERRY_ENV == "production"
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
    assert getattr(load_settings({"SECRET_KEY": TEST_SECRET_KEY, name: raw}, env_file=None), name) == expected


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
    ({"SMTP_HOSTNAME": "mx.test\r\n250 injected"}, "SMTP_HOSTNAME", "found a carriage return (CR)"),
    ({"SMTP_HOST": "relay.test\nRCPT TO:<x@evil.test>"}, "SMTP_HOST", "found a line feed (LF)"),
    ({"SMTP_USER": "user\x00"}, "SMTP_USER", "found a NUL byte"),
    ({"SMTP_RELAYS": '[{"host": "r.test", "user": "u\\r\\nX"}]'}, "SMTP_RELAYS", "relay 1: user must not contain"),
    ({"SMTP_RELAYS": '[{"host": "r.test\\n"}]'}, "SMTP_RELAYS", "relay 1: host must not contain"),
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
    settings = load_settings({"RQ_QUEUE": "fromenv", "SECRET_KEY": TEST_SECRET_KEY}, env_file=str(env_file))
    assert settings.SMTP_HOSTNAME == "mx.from-file.test"
    assert settings.RQ_QUEUE == "fromenv"
    assert settings.LOG_LEVEL == "WARNING"


def test_a_line_break_escaped_in_a_quoted_env_value_is_refused(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('SMTP_HOSTNAME="mx.test\\nMAIL FROM:<x@evil.test>"\n')
    with pytest.raises(SettingsError, match="SMTP_HOSTNAME: must not contain line breaks"):
        load_settings({"SECRET_KEY": TEST_SECRET_KEY}, env_file=str(env_file))


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


def _run_entry(args: list[str], env: dict[str, str], cwd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run an entry point in its own process group; one that starts when it should not is killed with its
    children (an RQ worker forks) when the timeout passes."""
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": ROOT, **env}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


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
        assert f"\n{setting.name}={setting.default}\n" in committed or \
            f"\n# {setting.name}={setting.default}\n" in committed


def test_a_copied_env_example_leaves_smtp_listen_to_make_run():
    """`cp .env.example .env; make run` as a non-root user: the file must not pin port 25 (make run then uses
    2525), while the default stays port 25."""
    from mailferry.settings import read_env_file

    values = read_env_file(os.path.join(ROOT, ".env.example"))
    assert "SMTP_LISTEN" not in values
    assert load_settings({"SECRET_KEY": TEST_SECRET_KEY}, env_file=None).SMTP_LISTEN == ("0.0.0.0", 25)


def test_env_example_loads_as_an_env_file_and_its_secret_key_is_refused():
    example = os.path.join(ROOT, ".env.example")
    with pytest.raises(SettingsError) as info:
        load_settings({}, env_file=example)
    assert info.value.name == "SECRET_KEY"
    settings = load_settings({"SECRET_KEY": TEST_SECRET_KEY}, env_file=example)
    assert settings.SMTP_DELIVERY_MODE == "direct"


# ---- SECRET_KEY: nothing starts in production with a key anyone knows or can guess ----

@pytest.mark.parametrize("env, name, fragment", [
    ({}, "SECRET_KEY", "is not set"),
    ({"SECRET_KEY": PUBLIC_KEY}, "SECRET_KEY", "public default"),
    ({"SECRET_KEY": "k" * (MIN_SECRET_LENGTH - 1)}, "SECRET_KEY", f"shorter than {MIN_SECRET_LENGTH}"),
    ({"SECRET_KEY": TEST_SECRET_KEY, "SRS_SECRET": "short-srs-key"}, "SRS_SECRET", f"shorter than {MIN_SECRET_LENGTH}"),
    ({"SECRET_KEY": PUBLIC_KEY, "MAILFERRY_ENV": "production"}, "SECRET_KEY", "public default"),
])
def test_weak_secret_is_refused_in_production_with_how_to_make_one(env, name, fragment):
    with pytest.raises(SettingsError) as info:
        load_settings(env, env_file=None)
    assert info.value.name == name
    assert fragment in str(info.value)
    assert 'python3 -c "import secrets; print(secrets.token_urlsafe(48))"' in str(info.value)


def test_a_key_of_the_minimum_length_is_used_as_given():
    key = "k" * MIN_SECRET_LENGTH
    settings = load_settings({"SECRET_KEY": key, "SRS_SECRET": key[::-1] + "s"}, env_file=None)
    assert settings.SECRET_KEY == key and settings.srs_secret == key[::-1] + "s"


@pytest.mark.parametrize("weak", ["", PUBLIC_KEY, "short"])
def test_development_never_uses_a_weak_key_but_a_random_one_per_process(weak):
    first = load_settings({"SECRET_KEY": weak, "MAILFERRY_ENV": "development"}, env_file=None)
    second = load_settings({"SECRET_KEY": weak, "MAILFERRY_ENV": "Development"}, env_file=None)
    assert first.MAILFERRY_ENV == "development"
    for settings in (first, second):
        assert len(settings.SECRET_KEY) >= MIN_SECRET_LENGTH and settings.SECRET_KEY != weak
        assert settings.srs_secret != f"srs:{weak}"
    assert first.SECRET_KEY != second.SECRET_KEY


def test_development_keeps_a_strong_key():
    settings = load_settings({"SECRET_KEY": TEST_SECRET_KEY, "MAILFERRY_ENV": "development"}, env_file=None)
    assert settings.SECRET_KEY == TEST_SECRET_KEY


def test_mailferry_env_is_production_or_development():
    with pytest.raises(SettingsError, match="MAILFERRY_ENV: must be one of production, development"):
        load_settings({"SECRET_KEY": TEST_SECRET_KEY, "MAILFERRY_ENV": "staging"}, env_file=None)


ENTRY_POINTS = [
    ["-m", "smtp"],
    ["worker.py"],
    ["-c", "import wsgi"],  # what gunicorn wsgi:app loads
    ["-m", "flask", "--app", "wsgi", "routes"],
]


@pytest.mark.parametrize("args", ENTRY_POINTS)
def test_entry_points_refuse_the_public_key_with_one_line(args, tmp_path):
    # were the key accepted, the process would start on these private, dead-end addresses and time out
    harmless = {"DATABASE_URL": f"sqlite:///{tmp_path}/unused.db", "REDIS_URL": "redis://127.0.0.1:1/0",
                "SMTP_LISTEN": "127.0.0.1:0"}
    result = _run_entry(args, {**harmless, "SECRET_KEY": PUBLIC_KEY}, ROOT, timeout=20)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mailferry: configuration error: SECRET_KEY: is the public default from .env.example; ")
    assert "secrets.token_urlsafe(48)" in line


def test_gunicorn_exits_2_instead_of_booting_workers_forever(tmp_path):
    """gunicorn.conf.py checks the settings in the master: without it each worker exits 2 and is replaced."""
    harmless = {"DATABASE_URL": f"sqlite:///{tmp_path}/unused.db", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = _run_entry(["-m", "gunicorn", "wsgi:app", "--bind", "127.0.0.1:0", "--workers", "1"],
                        {**harmless, "SECRET_KEY": PUBLIC_KEY}, ROOT, timeout=20)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert errors[0].startswith("mailferry: configuration error: SECRET_KEY: is the public default")


def test_the_cli_starts_with_the_public_key_in_development():
    result = _run_entry(["-m", "flask", "--app", "wsgi", "routes"],
                        {"SECRET_KEY": PUBLIC_KEY, "MAILFERRY_ENV": "development"}, ROOT)
    assert result.returncode == 0, result.stderr
    assert "/healthz" in result.stdout
