"""Who is acting: a signed-in User (owner scoping applies) or SYSTEM (the operator's CLI and scheduled jobs)."""

from __future__ import annotations

from typing import Protocol


class Actor(Protocol):
    @property
    def id(self) -> int | None: ...

    @property
    def is_admin(self) -> bool: ...


class _System:
    """The operator: the CLI and scheduled jobs see every owner's data, like an admin."""

    id = None
    is_admin = True

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM = _System()


def sees_everything(actor: Actor) -> bool:
    return bool(actor.is_admin)
