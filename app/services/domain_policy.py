"""A domain's inbound policy (what happens to mail failing DMARC/SPF or flagged as spam): the effective
choices, each either the domain's own or the instance default, and changing them with validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailferry.models import Domain
from mailferry.settings import DMARC_QUARANTINE_ACTIONS, DMARC_REJECT_ACTIONS, SPAM_ACTIONS, Settings

from .access import SYSTEM, Actor
from .domains import domain_dict, get_domain
from .errors import INVALID, ServiceError

DEFAULT = "default"  # what a caller passes to go back to the instance default
THRESHOLD_MAX = 1000.0
# field -> (allowed values, the instance setting that is its default)
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "dmarc_reject_policy": (DMARC_REJECT_ACTIONS, "DMARC_REJECT_POLICY"),
    "dmarc_quarantine_policy": (DMARC_QUARANTINE_ACTIONS, "DMARC_QUARANTINE_POLICY"),
    "spam_action": (SPAM_ACTIONS, "SPAM_ACTION"),
}
FIELDS = (*CHOICES, "spam_threshold")
_UNCHANGED = object()


@dataclass(frozen=True)
class PolicyValue:
    field: str
    stored: str | float | None  # the domain's own choice; None = the default
    effective: str | float | None  # what applies (spam_threshold None = rspamd's own actions)
    default: str | float | None  # the instance default

    @property
    def is_default(self) -> bool:
        return self.stored is None

    def to_dict(self) -> dict:
        return {"value": self.effective, "source": "default" if self.is_default else "domain",
                "default": self.default}


def effective_policy(domain: Domain, settings: Settings) -> dict[str, PolicyValue]:
    """Every policy field of the domain: its stored value, the one in force, and the instance default."""
    values = {}
    for name, (_allowed, setting) in CHOICES.items():
        stored, default = getattr(domain, name), getattr(settings, setting)
        values[name] = PolicyValue(name, stored, stored or default, default)
    values["spam_threshold"] = PolicyValue("spam_threshold", domain.spam_threshold, domain.spam_threshold, None)
    return values


def policy_dict(domain: Domain, settings: Settings) -> dict:
    return {name: value.to_dict() for name, value in effective_policy(domain, settings).items()}


def set_policy(session: Session, domain: Domain, actor: Actor = SYSTEM, *, dmarc_reject_policy=_UNCHANGED,
               dmarc_quarantine_policy=_UNCHANGED, spam_action=_UNCHANGED, spam_threshold=_UNCHANGED) -> Domain:
    """Change the given fields; None, "" or "default" go back to the instance default. Every value is checked
    before any is stored, and a bad one raises ServiceError naming its field."""
    get_domain(session, domain.id, actor)  # scoping check
    given = {"dmarc_reject_policy": dmarc_reject_policy, "dmarc_quarantine_policy": dmarc_quarantine_policy,
             "spam_action": spam_action, "spam_threshold": spam_threshold}
    changes = {name: parse_value(name, value) for name, value in given.items() if value is not _UNCHANGED}
    for name, value in changes.items():
        setattr(domain, name, value)
    session.flush()
    return domain


def parse_value(name: str, value: object) -> str | float | None:
    """The stored form of one field's input (None = the default), or ServiceError(INVALID, field=name)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", DEFAULT)):
        return None
    if name == "spam_threshold":
        return parse_threshold(value)
    allowed = CHOICES[name][0]
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ServiceError(INVALID, f"{name} must be one of {', '.join(allowed)} or default, got {value!r}", name)
    return value.strip().lower()


def parse_threshold(value: object) -> float:
    if isinstance(value, bool):
        raise ServiceError(INVALID, "spam_threshold must be a number", "spam_threshold")
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ServiceError(INVALID, f"spam_threshold must be a number from 0 to 1000, got {value!r}",
                           "spam_threshold") from None
    if not math.isfinite(number) or not 0 <= number <= THRESHOLD_MAX:
        raise ServiceError(INVALID, f"spam_threshold must be from 0 to 1000, got {value!r}", "spam_threshold")
    return number


def domain_json(domain: Domain, settings: Settings) -> dict:
    """domain_dict with the policy in force: {"effective_policy": {field: {value, source, default}}}."""
    return {**domain_dict(domain), "effective_policy": policy_dict(domain, settings)}
