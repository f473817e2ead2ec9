"""Encryption at rest of secrets we must be able to read back (DKIM private keys)."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mailferry-dkim-at-rest", info=b"fernet").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret_key: str, plaintext: bytes) -> bytes:
    return _fernet(secret_key).encrypt(plaintext)


def decrypt(secret_key: str, token: bytes) -> bytes:
    """Raises ValueError when SECRET_KEY changed since the value was encrypted."""
    try:
        return _fernet(secret_key).decrypt(token)
    except InvalidToken:
        raise ValueError("cannot decrypt: SECRET_KEY differs from the one the value was encrypted with") from None
