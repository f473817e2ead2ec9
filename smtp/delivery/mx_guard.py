"""MX hosts screened by the private-destination guard (mailferry.destinations) before anything connects.

An address the guard refuses is dropped from its host, a host left without addresses is dropped; when no
host is left the destination defers (451 4.4.4, like an MX without address: it is retried, and bounces only
after MAX_QUEUE_LIFETIME) with the refused hosts and addresses in the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailferry.destinations import DestinationGuard, Verdict, refusal

from .mx import MxError, MxHost


@dataclass(frozen=True)
class Screened:
    hosts: list[MxHost]  # in the order given, with only the addresses that may be connected to
    refused: tuple[tuple[MxHost, tuple[Verdict, ...]], ...] = ()  # each host with its refused addresses


def screen(hosts: list[MxHost], guard: DestinationGuard) -> Screened:
    kept: list[MxHost] = []
    refused: list[tuple[MxHost, tuple[Verdict, ...]]] = []
    for host in hosts:
        allowed, verdicts = guard.split(host.addresses)
        if verdicts:
            refused.append((host, verdicts))
        if allowed:
            kept.append(host if not verdicts else replace(host, addresses=allowed))
    return Screened(kept, tuple(refused))


def no_public_host(screened: Screened) -> MxError:
    """The deferral when every MX host was refused: 'MX mx.example resolves only to private addresses (10.0.0.1)'."""
    names = ", ".join(host.name for host, _ in screened.refused)
    verdicts = [v for _, refused in screened.refused for v in refused]
    return MxError(451, f"4.4.4 MX {refusal(names, verdicts)}", permanent=False)
