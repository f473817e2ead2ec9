"""The inbound decisions, run once per message at the end of DATA, before the 250: authentication
(SPF, DKIM, DMARC, ARC), the DMARC policy of each route's domain, the rspamd verdict and its policy; then
the header changes and whether a DSN may ever go back. Rate limits act earlier, at MAIL and RCPT
(rate_limits.py). Blocking work (DNS, DKIM) runs in the executor given, never on the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass

from mailferry import org_domain
from mailferry.resolver import make_resolver
from mailferry.settings import Settings
from smtp import replies

from ..routes import Route
from . import dmarc_policy, spam_policy
from .authentication import Authenticator, AuthResults
from .backscatter import dsn_block
from .budget import BudgetResolver, CachedDns
from .headers import prepare
from .policy import effective
from .spam import RspamdClient, SpamVerdict, x_spam_headers
from .verdict import FORWARD, QUARANTINE, TEMPFAIL, Verdict, for_transaction, worst


@dataclass(frozen=True)
class Arrival:
    """A message at the end of DATA, as the checks see it."""

    message_id: str
    raw: bytes
    mail_from: str  # "" for a null sender
    peer: str
    helo: str
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Decision:
    """The outcome for the transaction, and what is spooled with the message when it is accepted."""

    verdict: Verdict
    raw: bytes = b""
    auth: AuthResults | None = None
    spam: SpamVerdict | None = None
    dsn_block: str = ""

    @property
    def quarantined(self) -> bool:
        return self.verdict.action == QUARANTINE

    def columns(self) -> dict:
        """The inbound findings as `messages` columns."""
        return {"auth_results": self.auth.to_json() if self.auth else None,
                "rewrite_from": self.verdict.rewrite_from, "dsn_block": self.dsn_block,
                "spam_score": self.spam.score if self.spam and self.spam.scanned else None,
                "filter_reason": self.verdict.reason[:1000]}


class InboundChecks:
    def __init__(self, settings: Settings, executor: Executor, spam: RspamdClient | None = None):
        self.settings = settings
        self.executor = executor
        self.dns = CachedDns(make_resolver(settings))
        self.spam = spam
        org_domain.load()

    async def decide(self, arrival: Arrival) -> Decision:
        loop = asyncio.get_running_loop()
        auth = None
        if self.settings.INBOUND_AUTHENTICATION:
            auth = await loop.run_in_executor(self.executor, self._authenticate, arrival)
            if auth.temporary:
                return Decision(Verdict(TEMPFAIL, replies.AUTH_TEMPORARY, "DNS did not answer"), auth=auth)
        policies = [effective(route.policy, self.settings) for route in arrival.routes]
        verdicts = [[dmarc_policy.decide(auth, p)] if auth else [] for p in policies]
        spam = None
        if self.spam is not None and not for_transaction([worst(v) for v in verdicts]).refused:
            spam = await self._scan(arrival)
            for route_verdicts, policy in zip(verdicts, policies, strict=True):
                route_verdicts.append(spam_policy.decide(spam, policy, fail_open=self.settings.RSPAMD_FAIL_OPEN))
        verdict = for_transaction([worst(v) for v in verdicts])
        if verdict.refused:
            return Decision(verdict, auth=auth, spam=spam)
        flagged = verdict.action == FORWARD and verdict.spam_flagged
        spam_headers = None  # not scanned: the sender's X-Spam-* stay; scanned: ours replace them (none if clean)
        if spam is not None and spam.scanned:
            spam_headers = x_spam_headers(spam, flagged=True) if flagged else b""
        raw = prepare(arrival.raw, authserv_id=self.settings.SMTP_HOSTNAME, message_id=arrival.message_id,
                      hostname=self.settings.SMTP_HOSTNAME, spam_headers=spam_headers)
        block = dsn_block(arrival.raw, mail_from=arrival.mail_from, results=auth, spam_flagged=flagged,
                          quarantined=verdict.action == QUARANTINE)
        return Decision(verdict, raw, auth, spam, block)

    def _authenticate(self, arrival: Arrival) -> AuthResults:
        resolver = BudgetResolver(self.dns, self.settings.INBOUND_DNS_BUDGET)
        authenticator = Authenticator(resolver, self.settings.SMTP_HOSTNAME)
        return authenticator.check(arrival.raw, mail_from=arrival.mail_from, peer_ip=_ip(arrival.peer),
                                   helo=arrival.helo)

    async def _scan(self, arrival: Arrival) -> SpamVerdict:
        rcpts = [route.recipient for route in arrival.routes]
        return await self.spam.scan(arrival.raw, ip=_ip(arrival.peer), helo=arrival.helo, mail_from=arrival.mail_from,
                                    rcpts=rcpts, hostname=self.settings.SMTP_HOSTNAME, queue_id=arrival.message_id)


def _ip(peer: str) -> str:
    return peer.removeprefix("::ffff:")
