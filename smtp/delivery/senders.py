"""What goes on the wire for one transaction: the envelope sender and the message, by sender policy.

- direct, or a relay with from_policy `keep`: SRS envelope under the alias domain, headers untouched;
- a relay with from_policy `rewrite`: envelope = the relay account, From: "Name via alias.domain" <account>,
  Reply-To: the original sender, X-Original-From: the original From (smtp/from_rewrite.py);
- when the inbound checks said so (Message.rewrite_from: the alias domain's DMARC policy is `rewrite` and a
  p=reject sender's message has no aligned DKIM signature that passed): the same From rewrite, to the alias.

Our Authentication-Results (found at receipt, smtp/inbound), Received header and DKIM signature are added
after any rewrite, so the signature covers the new From; the ARC set seals the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import srslib

from mailferry.system_mail import SYSTEM_KIND
from smtp.from_rewrite import rewrite_from
from smtp.inbound.authentication import AuthResults
from smtp.routes import FORWARD, domain_of
from smtp.srs import Srs

from .arc import arc_set
from .dsn import DSN_KIND, OriginalMessage
from .exchange import Transaction
from .keys import KeyCache
from .record import Target
from .relay import Relay
from .transform import Outbound, crlf_only, forward, loop_header, received_header


@dataclass(frozen=True)
class Snapshot:
    """The message as one delivery pass sees it, detached from the session that loaded it."""

    id: str
    mail_from: str
    raw: bytes
    received_at: datetime
    helo: str
    peer: str
    used_tls: bool
    targets: tuple[Target, ...]
    # No open delivery of the message is left out of `targets`: settling it needs no read of the others.
    all_open_due: bool = False
    auth_results: str | None = None  # our findings at receipt (AuthResults JSON); None for mail from before them
    rewrite_from: bool = False
    dsn_block: str = ""  # why no DSN may be sent for this message ("" = one may)

    @property
    def results(self) -> AuthResults | None:
        return AuthResults.from_json(self.auth_results) if self.auth_results else None

    @property
    def original(self) -> OriginalMessage:
        return OriginalMessage(self.id, self.mail_from, self.raw, self.received_at)


@dataclass(frozen=True)
class Unit:
    """Destinations of one domain sharing one envelope and signature: same kind and alias domain."""

    kind: str
    alias_domain: str
    members: tuple[Target, ...]


@dataclass
class Senders:
    hostname: str
    srs: Srs
    keys: KeyCache
    arc: bool = False  # SMTP_ENABLE_ARC

    def transaction(self, snap: Snapshot, unit: Unit, relay: Relay | None) -> Transaction:
        out = self.outbound(snap, unit, relay)
        return Transaction(out.envelope_from, [m.destination for m in unit.members], out.data,
                           tag=(list(unit.members), out.dkim_signed))

    def outbound(self, snap: Snapshot, unit: Unit, relay: Relay | None) -> Outbound:
        if unit.kind == DSN_KIND:  # our own bounce: null sender, nothing to add
            return Outbound("", crlf_only(snap.raw), False)
        if unit.kind == SYSTEM_KIND:  # our own notice: our envelope, signed by the sender's domain when it can be
            return forward(crlf_only(snap.raw), envelope_from=snap.mail_from, received=b"",
                           key=self.keys.get(domain_of(snap.mail_from)))
        members = unit.members
        received = received_header(
            helo=snap.helo, peer=snap.peer, hostname=self.hostname, message_id=snap.id, used_tls=snap.used_tls,
            received_at=snap.received_at, recipient=members[0].recipient if len(members) == 1 else None,
        )
        raw, envelope = snap.raw, self._srs(snap.mail_from, unit.alias_domain)
        if unit.kind == FORWARD:
            received += b"".join(loop_header(a) for a in dict.fromkeys(m.recipient.lower() for m in members))
            alias = members[0].recipient
            if relay is not None and relay.from_policy == "rewrite":
                account = relay.user if "@" in relay.user else alias
                raw, _ = rewrite_from(crlf_only(raw), account=account, alias_address=alias)
                envelope = account
            elif snap.rewrite_from:
                raw, _ = rewrite_from(crlf_only(raw), account=alias, alias_address=alias)
        key = self.keys.get(unit.alias_domain)
        results = snap.results
        if results is None:
            return forward(raw, envelope_from=envelope, received=received, key=key)
        out = forward(raw, envelope_from=envelope, received=results.header() + received, key=key)
        if not (self.arc and out.dkim_signed):  # the seal needs the alias domain's key, as the signature does
            return out
        return Outbound(out.envelope_from, arc_set(out.data, key, results, snap.id) + out.data, True)

    def _srs(self, mail_from: str, alias_domain: str) -> str:
        try:
            return self.srs.forward(mail_from, alias_domain)
        except (srslib.Error, ValueError):  # a sender SRS cannot wrap: pass it through unchanged
            return mail_from


def units(targets: list[Target]) -> list[Unit]:
    """One unit per (kind, alias domain): each has its own SRS envelope and DKIM signature."""
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.kind, domain_of(target.recipient)), []).append(target)
    return [Unit(kind, alias_domain, tuple(members)) for (kind, alias_domain), members in groups.items()]
