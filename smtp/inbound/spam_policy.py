"""The spam step's decision for one route: rspamd's action, the domain's threshold and choice."""

from __future__ import annotations

import re

from smtp import replies

from .policy import Policy
from .spam import SpamVerdict
from .verdict import FORWARD, QUARANTINE, REJECT, TEMPFAIL, Verdict

FLAGGING_ACTIONS = ("add header", "rewrite subject")
DEFERRING_ACTIONS = ("soft reject", "greylist")
_UNSAFE = re.compile(r"[^\x20-\x7e]+")


def decide(verdict: SpamVerdict, policy: Policy, *, fail_open: bool) -> Verdict:
    if not verdict.scanned:
        if fail_open:
            return Verdict(FORWARD, reason=f"not scanned: {verdict.error}")
        return Verdict(TEMPFAIL, replies.FILTER_UNAVAILABLE, f"spam filter unavailable: {verdict.error}")
    score = f"spam score {verdict.score:.2f}"
    if verdict.action == "reject":
        return Verdict(REJECT, _with_text(replies.SPAM_REJECTED, verdict.message), f"rspamd: reject, {score}")
    if verdict.action in DEFERRING_ACTIONS:
        return Verdict(TEMPFAIL, _with_text(replies.SPAM_DEFERRED, verdict.message), f"rspamd: {verdict.action}")
    over = policy.spam_threshold is not None and verdict.score >= policy.spam_threshold
    if verdict.action not in FLAGGING_ACTIONS and not over:
        return Verdict(FORWARD)
    why = f"rspamd: {verdict.action}, {score}" if not over else f"{score} over the domain's {policy.spam_threshold:g}"
    if policy.spam_action == "reject":
        return Verdict(REJECT, replies.SPAM_REJECTED, why)
    if policy.spam_action == "quarantine":
        return Verdict(QUARANTINE, reason=why)
    return Verdict(FORWARD, reason=why, spam_flagged=True)


def _with_text(reply: str, text: str) -> str:
    """rspamd's own message to the sender after ours, printable ASCII on one line."""
    text = _UNSAFE.sub(" ", text or "").strip()[:200]
    return f"{reply}: {text}" if text else reply
