"""The key `make run` keeps in `.env`: written once when there is no strong one, then reused."""

from __future__ import annotations

import os
import stat

from harness.settings import TEST_SECRET_KEY
from mailferry.secret_keys import PUBLIC_SECRET_KEYS, key_for_development, weakness
from mailferry.settings import read_env_file

PUBLIC_KEY = sorted(PUBLIC_SECRET_KEYS)[0]


def _key(path) -> tuple[str, bool]:
    return key_for_development(str(path), {}, read_env_file(str(path)) if path.exists() else {})


def test_first_run_writes_a_random_key_readable_by_the_owner_only_and_later_runs_keep_it(tmp_path):
    env_file = tmp_path / ".env"
    key, written = _key(env_file)
    assert written and weakness(key) is None
    assert read_env_file(str(env_file)) == {"SECRET_KEY": key}
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert _key(env_file) == (key, False)
    assert _key(tmp_path / "other.env")[0] != key  # random, not derived from anything


def test_the_public_key_of_a_copied_env_example_is_replaced_and_the_other_lines_kept(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"# copied from .env.example\nSMTP_HOSTNAME=mx.dev.test\nSECRET_KEY={PUBLIC_KEY}\nLOG_LEVEL=DEBUG\n")
    key, written = _key(env_file)
    assert written and key != PUBLIC_KEY
    assert env_file.read_text() == f"# copied from .env.example\nSMTP_HOSTNAME=mx.dev.test\nSECRET_KEY={key}\nLOG_LEVEL=DEBUG\n"


def test_a_strong_key_from_the_environment_or_the_file_is_used_and_nothing_written(tmp_path):
    env_file = tmp_path / ".env"
    assert key_for_development(str(env_file), {"SECRET_KEY": TEST_SECRET_KEY}, {}) == (TEST_SECRET_KEY, False)
    assert not env_file.exists()
    env_file.write_text(f"SECRET_KEY={TEST_SECRET_KEY}\n")
    # a weak key exported in the shell does not replace the file's strong one (the DKIM keys need it)
    assert key_for_development(str(env_file), {"SECRET_KEY": "short"}, read_env_file(str(env_file))) == (TEST_SECRET_KEY, False)
    assert env_file.read_text() == f"SECRET_KEY={TEST_SECRET_KEY}\n"
