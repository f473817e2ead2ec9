"""The aiosmtpd handler: MAIL, RCPT and DATA decisions. Blocking work runs in threads, never on the loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from aiosmtpd.smtp import TLSSetupException

from mailferry.logs import get_logger, log
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.settings import Settings

from . import replies
from .content import check_content, loop_markers
from .inbound.pipeline import Arrival, Decision, InboundChecks
from .inbound.rate_limits import RateLimiter
from .recipients import RecipientResolver, Resolution, is_mailbox, recipient_refusal
from .routes import FORWARD, Route
from .spool import Incoming, Spooler, SpoolError, new_message_id

logger = get_logger("smtp.inbound")
NULL_SENDER = "<>"  # how aiosmtpd hands us MAIL FROM:<>; kept so its "need MAIL first" check still passes
HARD_ERROR_LIMIT = 20  # refused RCPTs per connection before it is closed (Postfix: smtpd_hard_error_limit)
EXTENSIONS_DROPPED = ("AUTH", "HELP")
EXTENSIONS_ADDED = ("PIPELINING", "ENHANCEDSTATUSCODES")


def peer_host(session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def without_looping_routes(routes: list[Route], raw: bytes) -> list[Route]:
    """The routes whose alias this message has not passed through yet (our own loop marker)."""
    seen = loop_markers(raw)
    if not seen:
        return list(routes)
    return [r for r in routes if r.kind != FORWARD or r.recipient.lower() not in seen]


class InboundHandler:
    def __init__(self, settings: Settings, resolver: RecipientResolver, spooler: Spooler, lookups: Executor,
                 checks: InboundChecks, limiter: RateLimiter):
        self.max_recipients = settings.SMTP_MAX_RECIPIENTS
        self.max_received = settings.SMTP_MAX_RECEIVED_HEADERS
        self.resolver = resolver
        self.spooler = spooler
        self.lookups = lookups
        self.checks = checks
        self.limiter = limiter
        self._lookups_running: dict[str, asyncio.Future] = {}  # cache key -> the lookup in the thread pool

    async def handle_EHLO(self, server, session, envelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        keywords = [r[4:] for r in responses[1:] if not r[4:].startswith(EXTENSIONS_DROPPED)]
        keywords.extend(EXTENSIONS_ADDED)
        lines = [responses[0]] + [f"250-{k}" for k in keywords]
        lines[-1] = "250 " + lines[-1][4:]
        return lines

    async def handle_MAIL(self, server, session, envelope, address: str, mail_options: list[str]) -> str:
        if address != NULL_SENDER and not is_mailbox(address):
            return replies.MALFORMED_ADDRESS
        peer = peer_host(session)
        limit = await self.limiter.message_from(peer)
        if limit.name == "refused":
            return self._harvesting(server, peer)
        if not limit.allowed:
            log(logger, logging.INFO, "sender rate limited", peer=peer, mail_from=address)
            return replies.RATE_LIMITED_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.OK_SENDER

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        if refusal := recipient_refusal(address):
            return await self._refuse_recipient(server, session, address, refusal)
        resolution = await self._resolve(address, session)
        if resolution is None:
            return replies.TEMPORARY_FAILURE
        if not resolution.accepted:
            return await self._refuse_recipient(server, session, address, resolution.reply)
        known = address.lower() in (r.lower() for r in envelope.rcpt_tos)
        if not known and not (limit := await self.limiter.recipient(resolution.route)).allowed:
            log(logger, logging.INFO, "recipient rate limited", peer=peer_host(session), rcpt=address, limit=limit.name)
            return replies.RATE_LIMITED_RECIPIENT
        if not known:
            envelope.rcpt_tos.append(address)
            envelope.routes.append(resolution.route)
        return resolution.reply

    async def _refuse_recipient(self, server, session, address: str, reply: str) -> str:
        peer = peer_host(session)
        log(logger, logging.INFO, "recipient refused", peer=peer, rcpt=address, reply=reply)
        server.refused_recipients += 1
        if server.refused_recipients > HARD_ERROR_LIMIT:
            server.close_after_reply()
            return replies.TOO_MANY_ERRORS
        if not (await self.limiter.refused(peer)).allowed:
            return self._harvesting(server, peer)
        return reply

    @staticmethod
    def _harvesting(server, peer: str) -> str:
        log(logger, logging.WARNING, "closing: too many refused recipients from this address", peer=peer)
        server.close_after_reply()
        return replies.HARVESTING

    async def _resolve(self, address: str, session) -> Resolution | None:
        """The cached resolution, or one lookup in the thread pool; sessions asking for an address whose
        lookup is already running wait for that one (a burst of connections to a new alias makes one
        query, not one each). None when the lookup failed."""
        resolution = self.resolver.cached(address)
        if resolution is not None:
            return resolution
        key = self.resolver.cache_key(address)
        running = self._lookups_running.get(key)
        if running is not None:
            await asyncio.wait([running])
            resolution = self.resolver.cached(address)
            if resolution is not None:
                return resolution
        lookup = asyncio.get_running_loop().run_in_executor(self.lookups, self.resolver.resolve, address)
        self._lookups_running.setdefault(key, lookup)
        try:
            resolution = await lookup
        except Exception:
            logger.error("recipient lookup failed", exc_info=True, extra={"peer": peer_host(session)})
            return None
        finally:
            if self._lookups_running.get(key) is lookup:
                del self._lookups_running[key]
        self.resolver.remember(address, resolution)
        return resolution

    async def handle_DATA(self, server, session, envelope) -> str:
        message_id = new_message_id()
        raw = envelope.original_content
        refusal = check_content(raw, self.max_received)
        if refusal:
            log(logger, logging.INFO, "message refused", message_id=message_id, peer=peer_host(session),
                reply=refusal, size=len(raw))
            return refusal
        routes = without_looping_routes(envelope.routes, raw)
        if not routes:
            log(logger, logging.INFO, "message refused", message_id=message_id, peer=peer_host(session),
                reply=replies.MAIL_LOOP, reason="already forwarded through this alias")
            return replies.MAIL_LOOP
        mail_from = "" if envelope.mail_from == NULL_SENDER else envelope.mail_from
        arrival = Arrival(message_id, raw, mail_from, peer_host(session), session.host_name or "", tuple(routes))
        decision = await self.checks.decide(arrival)
        self._log_decision(decision, arrival)
        if decision.verdict.refused:
            return decision.verdict.reply
        item = Incoming(
            message_id=message_id, mail_from=mail_from, routes=routes, raw=decision.raw, peer=arrival.peer,
            helo=arrival.helo, used_tls=session.ssl is not None,
            state=QUARANTINED if decision.quarantined else QUEUED, findings=decision.columns(),
        )
        server.busy = True
        try:
            await asyncio.wrap_future(self.spooler.submit(item))
        except SpoolError:
            return replies.TEMPORARY_FAILURE
        finally:
            server.busy = False
        log(logger, logging.INFO, "quarantined" if decision.quarantined else "queued", message_id=message_id,
            peer=item.peer, mail_from=item.mail_from, rcpts=len(item.routes), size=len(raw), tls=item.used_tls)
        return replies.QUEUED.format(id=message_id)

    @staticmethod
    def _log_decision(decision: Decision, arrival: Arrival) -> None:
        fields = {"message_id": arrival.message_id, "peer": arrival.peer, "mail_from": arrival.mail_from}
        if decision.auth is not None:
            fields["auth"] = " ".join(f"{r.method}={r.result}" for r in decision.auth.results)
        if decision.spam is not None:
            fields.update(spam_action=decision.spam.action, spam_score=decision.spam.score,
                          spam_error=decision.spam.error or None)
        if decision.verdict.refused:
            log(logger, logging.INFO, "message refused", reply=decision.verdict.reply, reason=decision.verdict.reason,
                **fields)
        elif decision.verdict.reason:
            log(logger, logging.INFO, "inbound checks", action=decision.verdict.action,
                reason=decision.verdict.reason, **fields)
        else:
            log(logger, logging.DEBUG, "inbound checks", action=decision.verdict.action, **fields)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # a client's failed handshake: routine on port 25, no bug of ours
            log(logger, logging.INFO, "TLS handshake failed", error=repr(error.__cause__ or error))
            return replies.TEMPORARY_FAILURE  # not sent: aiosmtpd closes the connection
        # aiosmtpd would answer a permanent 500 quoting the exception; a transient failure must stay 4xx.
        logger.error("session error", exc_info=error)
        return replies.TEMPORARY_FAILURE
