"""Settings for tests and the bench: defaults plus overrides, never read from os.environ or .env."""

from __future__ import annotations

from mailferry.settings import Settings, load_settings

# Long enough for the SECRET_KEY rule (mailferry/secret_keys.py); every test process is started with it.
TEST_SECRET_KEY = "test-secret-key-for-the-suite-only-0123456789abcdef"


def make_settings(**overrides) -> Settings:
    """Settings from defaults plus overrides, never reading os.environ or .env."""
    env = {"SMTP_HOSTNAME": "mx.mailferry.test", "SECRET_KEY": TEST_SECRET_KEY, "LOG_LEVEL": "DEBUG",
           "ALLOW_PRIVATE_DESTINATIONS": "true",  # every test MX is a sink on loopback
           # Hundreds of tests forward to addresses they just made up; the tests of verified destinations
           # (and the browser end-to-end flow) turn it on, the production default.
           "REQUIRE_VERIFIED_DESTINATIONS": "false"}
    env.update({k: str(v) for k, v in overrides.items()})
    return load_settings(env, env_file=None)
