"""Sender Rewriting Scheme (SRS0/SRS1) on top of srslib: forward the envelope sender, reverse bounces."""

from __future__ import annotations

import srslib


class SrsError(ValueError):
    """An SRS address with a bad hash, an expired timestamp or a broken shape."""


class Srs:
    def __init__(self, secret: str, max_age_days: int = 21, previous_secrets: tuple[str, ...] = ()):
        self._srs = srslib.SRS(secret, prev_secrets=list(previous_secrets), validity_days=max_age_days)

    @staticmethod
    def is_srs(address: str) -> bool:
        local = address.rpartition("@")[0]
        return local[:5].upper() in ("SRS0=", "SRS1=")

    def forward(self, sender: str, alias_domain: str) -> str:
        """The envelope sender to use when forwarding mail from `sender` through `alias_domain`.

        A null sender stays null; an SRS address from another forwarder becomes SRS1.
        """
        if not sender:
            return ""
        return self._srs.forward(sender, alias_domain)

    def reverse(self, address: str) -> str:
        """The address an SRS address stands for (one hop back); SrsError when forged or too old."""
        try:
            return self._srs.reverse(address)
        except srslib.InvalidHashError:
            raise SrsError("invalid SRS hash") from None
        except srslib.InvalidTimestampError:
            raise SrsError("SRS address expired") from None
        except (srslib.InvalidAddressError, srslib.Error, ValueError) as exc:
            raise SrsError(f"malformed SRS address: {exc}") from None
