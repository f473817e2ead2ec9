"""DKIM keys: generate (RSA-2048 or Ed25519), store encrypted, rotate, publish."""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.crypto import encrypt
from mailferry.dkim_keys import active_key
from mailferry.models import DkimKey, Domain

from . import audit
from .access import SYSTEM, Actor

ALGORITHMS = ("rsa", "ed25519")
__all__ = ["ALGORITHMS", "activate_key", "active_key", "generate_key", "txt_record"]


def _keypair(algorithm: str) -> tuple[bytes, str]:
    """(PKCS#8 PEM private key, p= value for DNS)."""
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # RFC 8463
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, base64.b64encode(public).decode()


def _next_selector(session: Session, domain: Domain) -> str:
    taken = set(session.scalars(select(DkimKey.selector).where(DkimKey.domain_id == domain.id)))
    stem = datetime.utcnow().strftime("mf%Y%m")
    n = 1
    while f"{stem}{'' if n == 1 else f'n{n}'}" in taken:
        n += 1
    return f"{stem}{'' if n == 1 else f'n{n}'}"


def generate_key(session: Session, domain: Domain, secret_key: str, algorithm: str = "rsa",
                 activate: bool | None = None, actor: Actor = SYSTEM) -> DkimKey:
    """A new key under a fresh selector. It becomes active when the domain has none (or activate=True);
    otherwise the old key keeps signing until the owner switches, so DNS can catch up."""
    pem, public_txt = _keypair(algorithm)
    has_active = session.scalar(select(DkimKey.id).where(DkimKey.domain_id == domain.id, DkimKey.active)) is not None
    key = DkimKey(domain_id=domain.id, selector=_next_selector(session, domain), algorithm=algorithm,
                  private_key_enc=encrypt(secret_key, pem), public_txt=public_txt, active=False)
    session.add(key)
    session.flush()
    if activate or (activate is None and not has_active):
        _activate(session, key)
    _record(session, audit.DKIM_KEY_GENERATED, key, domain, actor,
            f"DKIM key {key.selector} ({algorithm}) generated for {domain.name}" + (", signing" if key.active else ""))
    return key


def activate_key(session: Session, key: DkimKey, actor: Actor = SYSTEM) -> None:
    _activate(session, key)
    _record(session, audit.DKIM_KEY_ACTIVATED, key, key.domain, actor,
            f"DKIM key {key.selector} now signs {key.domain.name}")


def _activate(session: Session, key: DkimKey) -> None:
    for other in session.scalars(select(DkimKey).where(DkimKey.domain_id == key.domain_id)):
        other.active = other.id == key.id
    session.flush()


def _record(session: Session, action: str, key: DkimKey, domain: Domain, actor: Actor, summary: str) -> None:
    audit.record(session, action, actor=actor, owner_id=domain.owner_id, object_type="dkim_key", object_id=key.id,
                 summary=summary, details={"domain": domain.name, "selector": key.selector,
                                           "algorithm": key.algorithm, "active": key.active})


def txt_record(key: DkimKey, domain_name: str) -> tuple[str, str]:
    """(record name, TXT value) to publish."""
    k = "rsa" if key.algorithm == "rsa" else "ed25519"
    return f"{key.selector}._domainkey.{domain_name}", f"v=DKIM1; k={k}; p={key.public_txt}"
