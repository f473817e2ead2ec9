"""Network namespaces a test makes itself: each a 'host' joined to this machine by a veth pair.

This machine (the root namespace) is the third host: it owns the host side of every pair, so a namespace reaches
any of this machine's addresses through its default route, and this machine reaches the namespace's address.
"""

from __future__ import annotations

import os
import subprocess
import uuid


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    probe = f"mfprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns add` failed: {getattr(exc, 'stderr', '') or exc}"
    _ip("netns", "del", probe)
    return None


class Namespace:
    """`ip netns` NAME with ns_ip/30 on its end of a veth pair and gateway_ip/30 on ours."""

    def __init__(self, index: int, subnet: int):
        tag = uuid.uuid4().hex[:6]
        self.name = f"mf{tag}h{index}"
        self.outer = f"mf{tag}o{index}"  # interface names stay under 15 characters
        base = f"10.{subnet}.{index}"
        self.gateway_ip, self.ip = f"{base}.1", f"{base}.2"

    def create(self) -> "Namespace":
        _ip("netns", "add", self.name)
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("addr", "add", f"{self.gateway_ip}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        for args in (("addr", "add", f"{self.ip}/30", "dev", "eth0"), ("link", "set", "eth0", "up"),
                     ("link", "set", "lo", "up"), ("route", "add", "default", "via", self.gateway_ip)):
            _ip("netns", "exec", self.name, "ip", *args)
        return self

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def destroy(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)  # takes the pair along
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=30)
