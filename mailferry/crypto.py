"""Encryption at rest of secrets we must be able to read back (DKIM private keys, TOTP secrets), and keyed
hashes of secrets we only compare (recovery codes). Each purpose derives its own key from SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DKIM = b"mailferry-dkim-at-rest"
TOTP = b"mailferry-totp-at-rest"
RECOVERY_CODES = b"mailferry-recovery-codes"


def _derive(secret_key: str, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret_key.encode())


def _fernet(secret_key: str, purpose: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret_key, purpose, b"fernet")))


def encrypt(secret_key: str, plaintext: bytes, purpose: bytes = DKIM) -> bytes:
    return _fernet(secret_key, purpose).encrypt(plaintext)


def decrypt(secret_key: str, token: bytes, purpose: bytes = DKIM) -> bytes:
    """Raises ValueError when SECRET_KEY changed since the value was encrypted."""
    try:
        return _fernet(secret_key, purpose).decrypt(token)
    except InvalidToken:
        raise ValueError("cannot decrypt: SECRET_KEY differs from the one the value was encrypted with") from None


def keyed_digest(secret_key: str, purpose: bytes, value: str) -> str:
    """HMAC-SHA256 hex of `value` under a key derived for `purpose`: useless to a reader of the database alone."""
    return hmac.new(_derive(secret_key, purpose, b"hmac"), value.encode(), hashlib.sha256).hexdigest()
