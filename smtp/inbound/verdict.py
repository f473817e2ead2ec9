"""What each inbound step decides for one route, and how the decisions for a whole transaction combine
(one reply answers every recipient of a DATA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FORWARD = "forward"
QUARANTINE = "quarantine"
REJECT = "reject"
TEMPFAIL = "tempfail"
_SEVERITY = {FORWARD: 0, QUARANTINE: 1, REJECT: 2, TEMPFAIL: 3}


@dataclass(frozen=True)
class Verdict:
    action: str = FORWARD
    reply: str = ""  # the SMTP reply for REJECT and TEMPFAIL
    reason: str = ""  # why, for the log and the quarantine list
    rewrite_from: bool = False  # FORWARD with the From rewrite (DMARC p=reject, no aligned DKIM pass)
    spam_flagged: bool = False  # forwarded with X-Spam-* headers

    @property
    def refused(self) -> bool:
        return self.action in (REJECT, TEMPFAIL)


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """The most severe of one route's verdicts; the flags of forwarded ones add up."""
    chosen = max(verdicts, key=lambda v: _SEVERITY[v.action], default=Verdict())
    if chosen.action != FORWARD:
        return chosen
    return Verdict(FORWARD, rewrite_from=any(v.rewrite_from for v in verdicts),
                   spam_flagged=any(v.spam_flagged for v in verdicts),
                   reason="; ".join(v.reason for v in verdicts if v.reason))


def for_transaction(per_route: Sequence[Verdict]) -> Verdict:
    """One verdict for the whole transaction: a temporary failure of any route defers it all (the sender
    retries); a refusal answers 550 only when every route refuses, since a 550 would also refuse the routes
    that want the message: those it is quarantined for instead (stored, not forwarded, never bounced)."""
    if not per_route:
        return Verdict()
    tempfail = next((v for v in per_route if v.action == TEMPFAIL), None)
    if tempfail is not None:
        return tempfail
    if all(v.action == REJECT for v in per_route):
        return per_route[0]
    held = next((v for v in per_route if v.action in (REJECT, QUARANTINE)), None)
    if held is not None:
        return Verdict(QUARANTINE, reason=held.reason)
    return worst(per_route)
