"""DKIM keys as the dashboard and API reach them: by id, scoped to the acting owner; never the private key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailferry.models import DkimKey, Domain

from .access import SYSTEM, Actor
from .dkim_keys import txt_record
from .domains import scoped
from .errors import NOT_FOUND, ServiceError


def get_key(session: Session, key_id: int, actor: Actor = SYSTEM, domain_id: int | None = None) -> DkimKey:
    query = scoped(select(DkimKey).join(Domain).where(DkimKey.id == key_id), actor)
    if domain_id is not None:
        query = query.where(DkimKey.domain_id == domain_id)
    key = session.scalar(query)
    if key is None:
        raise ServiceError(NOT_FOUND, f"no DKIM key #{key_id}", "key")
    return key


def list_keys(session: Session, domain: Domain) -> list[DkimKey]:
    """Active key first, then the others newest first."""
    keys = session.scalars(select(DkimKey).where(DkimKey.domain_id == domain.id))
    return sorted(keys, key=lambda k: (not k.active, -k.id))


def key_dict(key: DkimKey, domain_name: str) -> dict:
    name, value = txt_record(key, domain_name)
    return {"id": key.id, "selector": key.selector, "algorithm": key.algorithm, "active": key.active,
            "created_at": key.created_at.isoformat() + "Z" if key.created_at else None,
            "record": {"type": "TXT", "name": name, "value": value}}
