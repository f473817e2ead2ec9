"""Aliases: add, list, update, delete; `*@domain` is the catch-all; several destinations each."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailferry.models import CATCH_ALL, Alias, Domain
from mailferry.settings import Settings

from . import audit
from .access import SYSTEM, Actor
from .addresses import normalise_destination, split_address, validate_alias_local_part
from .control_chars import refuse_control_characters
from .domains import get_domain, scoped
from .errors import EXISTS, INVALID, NOT_FOUND, ServiceError
from .mailboxes import ensure_mailboxes

MAX_DESTINATIONS = 20
MAX_NOTE = 500


DESTINATION_SEPARATORS = re.compile(r"[ ,;]+")  # within a line; lines (LF or CRLF) separate too
DESTINATIONS_HELP = ("One or more addresses, separated by line breaks, commas or spaces. A new address is sent a "
                     "confirmation link and receives mail once it is confirmed.")


def _split(value: str) -> list[str]:
    """Line breaks, commas, semicolons and spaces separate; any other control character (a tab, a bare CR) is
    refused, as in every address."""
    items = []
    for line in value.replace("\r\n", "\n").split("\n"):
        refuse_control_characters(line, "destinations", "a destination address")
        items.extend(item for item in DESTINATION_SEPARATORS.split(line.strip()) if item)
    return items


def parse_destinations(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """'a@x.com, b@y.org' (or line breaks, spaces, semicolons) or a list -> normalised, de-duplicated addresses in
    the order given. An error names the address at fault and, in a list, which one it is."""
    items = _split(value) if isinstance(value, str) else [str(v).strip() for v in value if str(v).strip()]
    result: list[str] = []
    for position, item in enumerate(items, 1):
        try:
            address = normalise_destination(item)
        except ServiceError as exc:
            if len(items) > 1:
                raise ServiceError(exc.code, f"destination {position} of {len(items)}: {exc.message}",
                                   "destinations") from None
            raise
        if address.lower() not in {r.lower() for r in result}:
            result.append(address)
    if not result:
        raise ServiceError(INVALID, "at least one destination address is required", "destinations")
    if len(result) > MAX_DESTINATIONS:
        raise ServiceError(INVALID, f"at most {MAX_DESTINATIONS} destinations per alias", "destinations")
    return result


def _check_no_self_loop(alias_address: str, destinations: list[str]) -> None:
    for destination in destinations:
        if destination.lower() == alias_address.lower():
            raise ServiceError(INVALID, f"{destination} would forward to itself", "destinations")


def _check_note(note: str) -> str:
    note = refuse_control_characters((note or "").strip(), "note", "the note")
    if len(note) > MAX_NOTE:
        raise ServiceError(INVALID, f"the note may have at most {MAX_NOTE} characters", "note")
    return note


def add_alias(session: Session, address: str, destinations: str | list[str], actor: Actor = SYSTEM,
              note: str = "", enabled: bool = True, address_field: str = "address",
              settings: Settings | None = None) -> Alias:
    """ADDRESS is local@domain or *@domain (the catch-all) on a domain the actor may see; errors about it name
    `address_field` (the API takes the local part as local_part). Each destination becomes a mailbox of the
    domain's owner; `settings`: send the new ones their confirmation (services/mailboxes.py)."""
    local, domain_name = split_address(address, address_field)
    domain = get_domain(session, domain_name, actor)
    local_part = CATCH_ALL if local.strip() == CATCH_ALL else validate_alias_local_part(local, address_field)
    targets = parse_destinations(destinations)
    _check_no_self_loop(f"{local_part}@{domain.name}", targets)
    if _find(session, domain, local_part) is not None:
        raise ServiceError(EXISTS, f"{local_part}@{domain.name} already exists", address_field)
    alias = Alias(domain_id=domain.id, local_part=local_part, destinations=targets, enabled=enabled,
                  note=_check_note(note), forwarded_count=0, bounced_count=0)
    session.add(alias)
    try:
        session.flush()
    except IntegrityError:  # added concurrently between the check and the insert
        raise ServiceError(EXISTS, f"{local_part}@{domain.name} already exists", address_field) from None
    ensure_mailboxes(session, domain.owner, targets, settings)
    _record(session, audit.ALIAS_CREATED, alias, domain, actor, f"alias {alias.address} created",
            {"destinations": list(targets), "enabled": alias.enabled})
    return alias


def _record(session: Session, action: str, alias: Alias, domain: Domain, actor: Actor, summary: str,
            details: dict) -> None:
    audit.record(session, action, actor=actor, owner_id=domain.owner_id, object_type="alias", object_id=alias.id,
                 summary=summary, details={"address": f"{alias.local_part}@{domain.name}", **details})


def _find(session: Session, domain: Domain, local_part: str) -> Alias | None:
    return session.scalar(select(Alias).where(Alias.domain_id == domain.id, Alias.local_part == local_part))


def get_alias(session: Session, alias_id: int, actor: Actor = SYSTEM) -> Alias:
    alias = session.scalar(scoped(select(Alias).join(Domain).where(Alias.id == alias_id), actor))
    if alias is None:
        raise ServiceError(NOT_FOUND, f"no alias #{alias_id}", "alias")
    return alias


def find_alias(session: Session, address: str, actor: Actor = SYSTEM) -> Alias:
    local, domain_name = split_address(address)
    domain = get_domain(session, domain_name, actor)
    local_part = CATCH_ALL if local.strip() == CATCH_ALL else local.strip().lower()
    alias = _find(session, domain, local_part)
    if alias is None:
        raise ServiceError(NOT_FOUND, f"no alias {local_part}@{domain.name}", "address")
    return alias


def list_aliases(session: Session, actor: Actor = SYSTEM, domain: Domain | None = None,
                 search: str | None = None) -> list[Alias]:
    query = scoped(select(Alias).join(Domain), actor)
    if domain is not None:
        query = query.where(Alias.domain_id == domain.id)
    if search:
        term = refuse_control_characters(search.strip().lower(), "q", "the search")
        query = query.where(Alias.local_part.contains(term, autoescape=True))
    return list(session.scalars(query.order_by(Domain.name, Alias.local_part)))


def update_alias(session: Session, alias: Alias, actor: Actor = SYSTEM, *, destinations: str | list[str] | None = None,
                 enabled: bool | None = None, note: str | None = None, settings: Settings | None = None) -> Alias:
    get_alias(session, alias.id, actor)  # scoping check
    before = _audited(alias)
    if destinations is not None:
        targets = parse_destinations(destinations)
        _check_no_self_loop(alias.address, targets)
        alias.destinations = targets
    if enabled is not None:
        alias.enabled = bool(enabled)
    if note is not None:
        alias.note = _check_note(note)
    session.flush()
    if destinations is not None:  # after every check: a refused change sends nothing
        ensure_mailboxes(session, alias.domain.owner, alias.destinations, settings)
    after = _audited(alias)
    changed = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
    if changed:
        _record(session, audit.ALIAS_CHANGED, alias, alias.domain, actor,
                f"alias {alias.address} changed: {', '.join(changed)}", changed)
    return alias


def _audited(alias: Alias) -> dict:
    """What an alias_changed event compares."""
    return {"destinations": list(alias.destinations), "enabled": bool(alias.enabled), "note": alias.note}


def delete_alias(session: Session, alias: Alias, actor: Actor = SYSTEM) -> None:
    get_alias(session, alias.id, actor)
    _record(session, audit.ALIAS_DELETED, alias, alias.domain, actor, f"alias {alias.address} deleted",
            {"destinations": list(alias.destinations)})
    session.delete(alias)
    session.flush()


def alias_dict(alias: Alias) -> dict:
    return {
        "id": alias.id,
        "address": alias.address,
        "domain": alias.domain.name,
        "catch_all": alias.is_catch_all,
        "destinations": list(alias.destinations),
        "enabled": alias.enabled,
        "note": alias.note,
        "forwarded": alias.forwarded_count,
        "bounced": alias.bounced_count,
        "last_used_at": alias.last_used_at.isoformat() + "Z" if alias.last_used_at else None,
    }
