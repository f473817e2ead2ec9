"""Reading DKIM keys for signing: shared by the dashboard (app/services) and the worker (smtp/)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .crypto import decrypt
from .models import DkimKey, Domain


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str  # rsa | ed25519
    private_pem: bytes


def active_key(session: Session, domain_id: int) -> DkimKey | None:
    return session.scalar(select(DkimKey).where(DkimKey.domain_id == domain_id, DkimKey.active))


def signing_key(session: Session, domain_name: str, secret_key: str) -> SigningKey | None:
    """The decrypted active key of a domain we host (its verified claim), or None when it has none."""
    row = session.execute(
        select(DkimKey, Domain.name).join(Domain, Domain.id == DkimKey.domain_id)
        .where(Domain.name == domain_name.lower(), Domain.verified, DkimKey.active)  # not a pending claim's key
    ).first()
    if row is None:
        return None
    key, name = row
    return SigningKey(domain=name, selector=key.selector, algorithm=key.algorithm,
                      private_pem=decrypt(secret_key, key.private_key_enc))
