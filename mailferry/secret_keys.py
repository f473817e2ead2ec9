"""What makes a SECRET_KEY (or SRS_SECRET) strong enough, and writing a new random one into `.env`.

Sessions, the SRS hash and the key that encrypts DKIM private keys at rest all come from SECRET_KEY, so a key
anyone can read (a default published in this repository) or guess lets them forge sessions and SRS addresses.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping

# Defaults that were published in .env.example or the settings table: known to everyone, never a secret.
PUBLIC_SECRET_KEYS = frozenset({"dev-insecure-change-me"})
# 32 characters carry at least 128 bits even written as hex, the least dense way a random key is usually
# printed; token_urlsafe(48) below gives 64 characters (384 bits).
MIN_SECRET_LENGTH = 32
HOW_TO_MAKE = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
_ASSIGNMENT = re.compile(r"^\s*(export\s+)?SECRET_KEY\s*=")


def weakness(key: str) -> str | None:
    """Why `key` must not be used as a secret, or None when it is acceptable."""
    if not key:
        return "is not set"
    if key in PUBLIC_SECRET_KEYS:
        return "is the public default from .env.example"
    if len(key) < MIN_SECRET_LENGTH:
        return f"is {len(key)} characters, shorter than {MIN_SECRET_LENGTH}"
    return None


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def key_for_development(env_file: str, environ: Mapping[str, str], file_values: Mapping[str, str]) -> tuple[str, bool]:
    """(the SECRET_KEY `make run` gives its processes, whether it was just written into `env_file`).

    A strong key from the environment or the file is kept; otherwise a new random one is stored in the file, so
    the next run finds it and DKIM keys encrypted with it stay readable."""
    for key in (environ.get("SECRET_KEY", ""), file_values.get("SECRET_KEY", "")):
        if weakness(key) is None:
            return key, False
    key = new_secret_key()
    store_in_env_file(env_file, key)
    return key, True


def store_in_env_file(path: str, key: str) -> None:
    """Set SECRET_KEY=key in the `.env` at `path`: replaces an existing assignment, else appends; creates the
    file (readable by its owner only) when there is none. Other lines are kept as they are."""
    lines: list[str] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    line = f"SECRET_KEY={key}"
    replaced = [line if _ASSIGNMENT.match(old) else old for old in lines]
    if not any(_ASSIGNMENT.match(old) for old in lines):
        replaced.append(line)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(replaced) + "\n")
