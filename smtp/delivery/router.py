"""The delivery router: how mail for one destination domain leaves, by SMTP_DELIVERY_MODE.

- direct: the domain's MX hosts (their public addresses only: smtp.delivery.mx_guard), gated by the shared
          per-domain limits (over them: deferred a little);
- relay:  the relays in order (RelayTransport: failover, circuit breaker, pooled connections);
- hybrid: direct first; what direct defers, cannot connect for, or refuses because of our IP (a 5xx that
          smtp.routing.blocks calls an IP block) goes to the relays in the same pass. A 5xx about the
          recipient (5.1.1) bounces without fallback;
- smart:  per destination domain, by the recent success rate of each route (smtp.routing.smart, in the
          database so every worker shares it), exploring the other route now and then; without history,
          and whenever it picks direct, it behaves like hybrid. Every outcome is folded into the scores.

`deliver_domain()` yields, per transaction, its attempts and whether nothing more is sent for the domain
after it, so the job can commit what was delivered before the next transaction goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from mailferry.logs import log
from mailferry.models.message import BOUNCED, DEFERRED, DELIVERED
from smtp.routing import smart
from smtp.routing.blocks import is_ip_block

from .context import Context
from .mx import MxError, MxHost
from .mx_guard import no_public_host, screen
from .outcome import Reply, classify
from .record import Attempt, Target
from .senders import Snapshot, Unit, units
from .transport import TransactionResult

logger = logging.getLogger(__name__)
Step = tuple[list[Attempt], bool]


def deliver_domain(ctx: Context, snap: Snapshot, domain: str, targets: list[Target]) -> Iterator[Step]:
    mode = ctx.settings.SMTP_DELIVERY_MODE
    has_relays = bool(ctx.relays.relays)
    if mode == "relay" and has_relays:
        yield from _via_relays(ctx, snap, domain, targets, learn=False)
    elif mode == "smart" and has_relays:
        with ctx.db.session() as s:
            choice = smart.choose(s, domain, ctx.rng)
        log(logger, logging.DEBUG, "smart route", message_id=snap.id, domain=domain, route=choice)
        if choice == smart.RELAY:
            yield from _via_relays(ctx, snap, domain, targets, learn=True)
        else:
            yield from _direct(ctx, snap, domain, targets, fallback=True, learn=True)
    else:
        yield from _direct(ctx, snap, domain, targets, fallback=mode == "hybrid" and has_relays, learn=False)


def falls_back(reply: Reply) -> bool:
    """Would a relay do better? Deferrals and no answer, and 5xx blocks of our IP; not recipient 5xx."""
    outcome = classify(reply)
    return outcome == DEFERRED or (outcome == BOUNCED and is_ip_block(reply.code or 0, reply.text))


def _direct(ctx: Context, snap: Snapshot, domain: str, targets: list[Target], *, fallback: bool,
            learn: bool) -> Iterator[Step]:
    held: list[Target] = []
    earlier: dict[int, Attempt] = {}
    try:
        hosts = _public_hosts(ctx, snap, domain, ctx.mx.lookup(domain))
    except MxError as exc:
        reply = Reply(exc.code, exc.text)
        if fallback and not exc.permanent:
            held = list(targets)
            earlier = {t.id: Attempt(t, reply) for t in targets}
            if learn:
                _learn(ctx, domain, smart.DIRECT, list(earlier.values()))
        else:
            yield [Attempt(t, reply) for t in targets], True
            return
    else:
        grant = ctx.limiter.acquire(domain, new_connection=not ctx.transport.has_parked(hosts))
        if not grant.granted:
            wait = grant.retry_after
            log(logger, logging.INFO, "destination limit reached, deferring", message_id=snap.id, domain=domain,
                retry_after=wait)
            reply = Reply(None, f"4.4.5 connection limit for {domain} reached; retrying in {wait:.0f}s")
            yield [Attempt(t, reply, retry_after=wait) for t in targets], True
            return
        try:
            transactions = [ctx.senders.transaction(snap, unit, None) for unit in units(targets)]
            for result in ctx.transport.send(hosts, transactions):
                attempts = _attempts(result, f"mx:{result.mx_host}" if result.mx_host else "")
                if learn:
                    _learn(ctx, domain, smart.DIRECT, attempts)
                if fallback:
                    moved = [a for a in attempts if falls_back(a.reply)]
                    for a in moved:
                        log(logger, logging.INFO, "direct failed, falling back to the relays", message_id=snap.id,
                            destination=a.target.destination, code=a.reply.code, reply=a.reply.text[:300])
                    held += [a.target for a in moved]
                    earlier.update((a.target.id, a) for a in moved)
                    attempts = [a for a in attempts if a not in moved]
                if attempts:
                    yield attempts, result.final and not held
        finally:
            ctx.limiter.release(domain, grant)
    if held:
        yield from _via_relays(ctx, snap, domain, held, learn=learn, earlier=earlier)


def _public_hosts(ctx: Context, snap: Snapshot, domain: str, hosts: list[MxHost]) -> list[MxHost]:
    """The hosts the private-destination guard lets us connect to; MxError (a deferral) when none is left."""
    screened = screen(hosts, ctx.guard)
    for host, refused in screened.refused:
        log(logger, logging.WARNING, "MX address refused: not a public destination", message_id=snap.id,
            domain=domain, mx=host.name, refused=[str(v) for v in refused])
    if not screened.hosts:
        raise no_public_host(screened)
    return screened.hosts


def _via_relays(ctx: Context, snap: Snapshot, domain: str, targets: list[Target], *, learn: bool,
                earlier: dict[int, Attempt] | None = None) -> Iterator[Step]:
    def build(relay, unit: Unit):
        return ctx.senders.transaction(snap, unit, relay)

    earlier = earlier or {}
    for result in ctx.relays.send(units(targets), build, message_id=snap.id):
        attempts = _attempts(result, f"relay:{result.relay}" if result.relay else "")
        attempts = [replace(a, fell_back=(earlier[a.target.id],)) if a.target.id in earlier else a for a in attempts]
        if learn:
            _learn(ctx, domain, smart.RELAY, attempts)
        yield attempts, result.final


def _attempts(result: TransactionResult, route: str) -> list[Attempt]:
    members, signed = result.transaction.tag
    return [Attempt(t, result.replies[t.destination], result.mx_host, result.tls, signed, route=route)
            for t in members]


def _learn(ctx: Context, domain: str, route: str, attempts: list[Attempt]) -> None:
    """One outcome per transaction: a recipient's own 5xx is no fault of the route."""
    ok = any(classify(a.reply) == DELIVERED or (classify(a.reply) == BOUNCED and not falls_back(a.reply))
             for a in attempts)
    with ctx.db.session() as s:
        smart.record(s, domain, route, ok)
