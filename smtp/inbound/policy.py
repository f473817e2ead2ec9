"""What a domain wants done with mail that fails authentication or looks like spam: its own choices, or the
instance defaults from settings where it made none."""

from __future__ import annotations

from dataclasses import dataclass

from mailferry.settings import Settings


@dataclass(frozen=True)
class DomainPolicy:
    """A domain's choices as stored; None means "the instance default"."""

    dmarc_reject: str | None = None  # reject | rewrite | quarantine
    dmarc_quarantine: str | None = None  # quarantine | reject | forward
    spam_action: str | None = None  # forward | quarantine | reject
    spam_threshold: float | None = None


@dataclass(frozen=True)
class Policy:
    """The policy in force for one route: every choice made."""

    dmarc_reject: str
    dmarc_quarantine: str
    spam_action: str
    spam_threshold: float | None


def effective(domain: DomainPolicy | None, settings: Settings) -> Policy:
    domain = domain or DomainPolicy()
    return Policy(
        dmarc_reject=domain.dmarc_reject or settings.DMARC_REJECT_POLICY,
        dmarc_quarantine=domain.dmarc_quarantine or settings.DMARC_QUARANTINE_POLICY,
        spam_action=domain.spam_action or settings.SPAM_ACTION,
        spam_threshold=domain.spam_threshold,
    )
