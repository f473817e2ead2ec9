"""A real DNS server on loopback (UDP + TCP) built on dnspython, so the production resolver path runs unchanged.

    server = DnsServer(); server.start()
    server.add("example.test", "MX", "10 mx1.example.test.", ttl=300)
    server.add("mx1.example.test", "A", "127.0.0.2")
    settings: DNS_NAMESERVERS=f"127.0.0.1:{server.port}"

Names not in the zone get NXDOMAIN; a name with records of other types gets NOERROR/NODATA;
`server.drop(name)` makes queries for a name time out (no answer) until `server.undrop(name)`; `server.queries` counts lookups.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .net import free_port


def _key(name: str) -> str:
    return name.lower().rstrip(".") + "."


class Zone:
    def __init__(self):
        self.records: dict[tuple[str, int], tuple[int, list[str]]] = {}
        self.dropped: set[str] = set()
        self.queries: Counter = Counter()
        self.lock = threading.Lock()

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        with self.lock:
            self.queries[(name, dns.rdatatype.to_text(question.rdtype))] += 1
            if name in self.dropped:
                return None
            found = self.records.get((name, question.rdtype))
            exists = any(n == name for n, _ in self.records)
        if found:
            ttl, values = found
            rrset = dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN, question.rdtype, values)
            response.answer.append(rrset)
        elif not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.server.zone.answer(data)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        # rspamd's resolver opens TCP connections it may close unused, and may split the length from the query.
        while (prefix := self._exactly(2)) is not None:
            query = self._exactly(int.from_bytes(prefix, "big"))
            reply = self.server.zone.answer(query) if query else None
            if reply is None:
                return
            self.request.sendall(len(reply).to_bytes(2, "big") + reply)

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DnsServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.zone = Zone()
        self._servers: list[socketserver.BaseServer] = []

    @property
    def nameservers(self) -> str:
        """The DNS_NAMESERVERS value pointing at this server."""
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> Counter:
        return self.zone.queries

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> None:
        """Add records; TXT values are given unquoted and quoted here (split in 255-octet strings)."""
        kind = dns.rdatatype.from_text(rdtype)
        if kind == dns.rdatatype.TXT:
            values = tuple(" ".join(f'"{v[i:i + 255]}"' for i in range(0, max(len(v), 1), 255)) for v in values)
        with self.zone.lock:
            key = (_key(name), kind)
            old = self.zone.records.get(key, (ttl, []))[1]
            self.zone.records[key] = (ttl, old + list(values))

    def set(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> None:
        self.remove(name, rdtype)
        if values:
            self.add(name, rdtype, *values, ttl=ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self.zone.lock:
            for key in list(self.zone.records):
                if key[0] == _key(name) and (rdtype is None or key[1] == dns.rdatatype.from_text(rdtype)):
                    del self.zone.records[key]

    def drop(self, name: str) -> None:
        with self.zone.lock:
            self.zone.dropped.add(_key(name))

    def undrop(self, name: str) -> None:
        """Answer queries for a dropped name again."""
        with self.zone.lock:
            self.zone.dropped.discard(_key(name))

    def clear(self) -> None:
        with self.zone.lock:
            self.zone.records.clear()
            self.zone.dropped.clear()
            self.zone.queries.clear()

    def start(self) -> "DnsServer":
        udp = _UdpServer((self.host, self.port), _Udp)
        tcp = _TcpServer((self.host, self.port), _Tcp)
        for server in (udp, tcp):
            server.zone = self.zone
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


