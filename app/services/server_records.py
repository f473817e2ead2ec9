"""What the server's own name, SMTP_HOSTNAME, needs in DNS (as opposed to what each domain publishes).

Receivers check our addresses against SMTP_HOSTNAME both ways (forward-confirmed reverse DNS), and bounces
and DSNs go out with a null sender and HELO SMTP_HOSTNAME, so SPF is checked on the HELO name itself:
without a record there, rspamd scores R_SPF_NA."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

from mailferry.settings import Settings

from .dns_checks import public_ips_setting

THIS_SERVER = "the address of this server"
HELO_SPF = "v=spf1 a -all"


@dataclass(frozen=True)
class ServerRecord:
    type: str  # A | AAAA | PTR | TXT
    name: str  # fully qualified, no trailing dot
    value: str
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def server_records(settings: Settings) -> list[ServerRecord]:
    """A/AAAA and PTR for each of SMTP_PUBLIC_IPS (placeholders when it is empty), and the HELO name's SPF."""
    host = settings.SMTP_HOSTNAME
    addresses = [ipaddress.ip_address(ip) for ip in public_ips_setting(settings)]
    records: list[ServerRecord] = []
    if addresses:
        for ip in addresses:
            records.append(ServerRecord("A" if ip.version == 4 else "AAAA", host, str(ip),
                                        "SMTP_HOSTNAME resolves to the address mail is sent from"))
        for ip in addresses:
            records.append(ServerRecord("PTR", ip.reverse_pointer, host,
                                        "reverse DNS back to SMTP_HOSTNAME (set by whoever runs the address, "
                                        "often the hosting provider)"))
    else:
        records.append(ServerRecord("A/AAAA", host, THIS_SERVER,
                                    "SMTP_HOSTNAME resolves to the address mail is sent from (SMTP_PUBLIC_IPS is empty)"))
        records.append(ServerRecord("PTR", f"reverse name of {THIS_SERVER}", host,
                                    "reverse DNS of each address back to SMTP_HOSTNAME"))
    records.append(ServerRecord("TXT", host, HELO_SPF,
                                "SPF of the HELO name: bounces and DSNs have a null sender, so receivers check this"))
    return records
