"""The authentication step's decision for one route: what the From domain's DMARC policy, the sender's SPF
and the alias domain's choices make of our results."""

from __future__ import annotations

from smtp import replies

from .authentication import AuthResults
from .policy import Policy
from .verdict import FORWARD, QUARANTINE, REJECT, Verdict


def decide(results: AuthResults, policy: Policy) -> Verdict:
    dmarc, spf = results.result("dmarc"), results.result("spf")
    if dmarc == "fail" and results.dmarc_policy == "reject":
        why = f"DMARC fail, {results.from_domain} publishes p=reject"
        return _apply(policy.dmarc_reject, why, replies.DMARC_REJECTED.format(domain=results.from_domain))
    if dmarc == "fail" and results.dmarc_policy == "quarantine":
        why = f"DMARC fail, {results.from_domain} publishes p=quarantine"
        return _apply(policy.dmarc_quarantine, why, replies.AUTH_REJECTED.format(why="DMARC p=quarantine"))
    if spf == "fail" and not results.dkim_aligned:
        why = f"SPF fail for {results.spf_domain} and no aligned DKIM signature passed"
        return _apply(policy.dmarc_quarantine, why, replies.AUTH_REJECTED.format(why="SPF fail"))
    # A p=reject sender whose message only SPF vouches for fails DMARC at the destination (SRS envelope):
    # the rewrite gives it a From we sign. A passing aligned signature survives the forward, so it stays.
    rewrite = policy.dmarc_reject == "rewrite" and results.dmarc_policy == "reject" and not results.dkim_aligned
    return Verdict(FORWARD, rewrite_from=rewrite)


def _apply(choice: str, why: str, reply: str) -> Verdict:
    if choice == "reject":
        return Verdict(REJECT, reply, why)
    if choice == "quarantine":
        return Verdict(QUARANTINE, reason=why)
    if choice == "rewrite":
        return Verdict(FORWARD, reason=why, rewrite_from=True)
    return Verdict(FORWARD, reason=why)  # forward: the owner accepts the risk
