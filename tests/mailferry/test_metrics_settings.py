"""METRICS_LISTEN, WORKER_METRICS_LISTEN and METRICS_ALLOWED_IPS: parsed, and each mistake named in one line."""

from __future__ import annotations

import pytest

from harness.settings import TEST_SECRET_KEY
from mailferry.settings import SettingsError, load_settings


def _load(**env: str):
    return load_settings({"SECRET_KEY": TEST_SECRET_KEY, **env}, env_file=None)


def test_defaults_are_off_and_loopback_only():
    settings = _load()
    assert settings.METRICS_LISTEN is None and settings.WORKER_METRICS_LISTEN is None
    assert settings.METRICS_ALLOWED_IPS == ("127.0.0.1/32", "::1/128")


def test_values_parse():
    settings = _load(METRICS_LISTEN="127.0.0.1:9101", WORKER_METRICS_LISTEN="[::1]:9102",
                     METRICS_ALLOWED_IPS="10.0.0.5, 172.16.0.0/12")
    assert settings.METRICS_LISTEN == ("127.0.0.1", 9101)
    assert settings.WORKER_METRICS_LISTEN == ("::1", 9102)
    assert settings.METRICS_ALLOWED_IPS == ("10.0.0.5/32", "172.16.0.0/12")


@pytest.mark.parametrize("name,raw,fragment", [
    ("WORKER_METRICS_LISTEN", "127.0.0.1:0", "WORKER_METRICS_LISTEN: needs a fixed port"),
    ("METRICS_LISTEN", "9101", "METRICS_LISTEN: expected host:port"),
    ("METRICS_ALLOWED_IPS", "10.0.0.0/8,prometheus", "METRICS_ALLOWED_IPS: 'prometheus' is not an IP address"),
])
def test_mistakes_name_the_setting(name, raw, fragment):
    with pytest.raises(SettingsError) as info:
        _load(**{name: raw})
    assert fragment in str(info.value) and "\n" not in str(info.value)
