"""Signing keys for the worker: the active key of a domain, decrypted with SECRET_KEY."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from app.services.dkim_keys import activate_key, generate_key
from harness.settings import TEST_SECRET_KEY
from mailferry.dkim_keys import signing_key
from mailferry.models import Domain, User

SECRET = TEST_SECRET_KEY


def _domain(s, name: str) -> Domain:
    owner = User(email=f"owner@{name}", password_hash="x")
    domain = Domain(name=name, owner=owner, verify_token="t", verified=True)  # keys of verified claims sign
    s.add(domain)
    s.flush()
    return domain


def test_signing_key_is_the_active_one_decrypted(db):
    with db.session() as s:
        domain = _domain(s, "alias.test")
        first = generate_key(s, domain, SECRET)
        second = generate_key(s, domain, SECRET, algorithm="ed25519")
        assert signing_key(s, "ALIAS.test", SECRET).selector == first.selector
        activate_key(s, second)
        key = signing_key(s, "alias.test", SECRET)
    assert (key.domain, key.selector, key.algorithm) == ("alias.test", second.selector, "ed25519")
    serialization.load_pem_private_key(key.private_pem, password=None)


def test_no_key_and_wrong_secret(db):
    with db.session() as s:
        generate_key(s, _domain(s, "alias.test"), SECRET)
        _domain(s, "bare.test")
        assert signing_key(s, "bare.test", SECRET) is None
        assert signing_key(s, "unknown.test", SECRET) is None
        with pytest.raises(ValueError, match="SECRET_KEY"):
            signing_key(s, "alias.test", "another-secret-key-000000")
