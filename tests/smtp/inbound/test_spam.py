"""smtp/inbound/spam.py against a real rspamd (harness/rspamd_server.py) and against servers that misbehave."""

from __future__ import annotations

import asyncio
import time

from smtp.inbound.spam import RspamdClient, SpamVerdict, envelope_headers, x_spam_headers

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
ENVELOPE = {"ip": "192.0.2.10", "helo": "mail.sender-example.com", "mail_from": "alice@sender-example.com",
            "rcpts": ["john@alias-example.com"], "hostname": "mail.sender-example.com", "queue_id": "Q1"}


def message(body: str = "Hello Bob,\r\n\r\nlunch on Friday?\r\n\r\nAlice\r\n") -> bytes:
    return ("From: Alice <alice@sender-example.com>\r\nTo: john@alias-example.com\r\nSubject: lunch\r\n"
            "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <lunch.1@sender-example.com>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def scan(url: str, raw: bytes, timeout: float = 10, **envelope) -> SpamVerdict:
    return asyncio.run(RspamdClient(url, timeout).scan(raw, **{**ENVELOPE, **envelope}))


def test_gtube_is_rejected(rspamd, dns_server):
    verdict = scan(rspamd.url, message(f"Hello\r\n{GTUBE}\r\n"))
    assert verdict.scanned and not verdict.error
    assert verdict.action == "reject"
    assert "GTUBE" in verdict.symbols
    assert verdict.message  # rspamd's text for the sender ("Gtube pattern")


def test_gtube_from_loopback_is_rejected_too(rspamd, dns_server):
    verdict = scan(rspamd.url, message(f"Hello\r\n{GTUBE}\r\n"), ip="127.0.0.1")
    assert verdict.action == "reject"


def test_clean_message_is_not_rejected_and_has_a_score(rspamd, dns_server):
    verdict = scan(rspamd.url, message())
    assert verdict.scanned
    assert verdict.action not in ("reject", "soft reject"), verdict
    assert isinstance(verdict.score, float) and verdict.required > verdict.score
    assert verdict.symbols  # e.g. MIME_GOOD, RCPT_COUNT_ONE


def test_mail_from_loopback_is_still_checked_for_spf(rspamd, dns_server):
    # rspamd treats loopback senders as local and skips SPF: check_local = true in spf.conf stops that.
    dns_server.add("sender-example.com", "TXT", "v=spf1 -all")
    verdict = scan(rspamd.url, message(), ip="127.0.0.1")
    assert "R_SPF_FAIL" in verdict.symbols, verdict.symbols


def test_rspamd_checks_spf_itself_from_the_envelope(rspamd, dns_server):
    # another domain than the -all test's: rspamd caches SPF records for their TTL
    dns_server.add("spf-pass-example.net", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    verdict = scan(rspamd.url, message(), mail_from="bob@spf-pass-example.net")
    assert "R_SPF_ALLOW" in verdict.symbols, verdict.symbols


def test_symbols_are_ranked_by_score(rspamd, dns_server):
    verdict = scan(rspamd.url, message(f"Hello\r\n{GTUBE}\r\n"), ip="127.0.0.1", hostname="")
    assert verdict.symbols[0] == "GTUBE" or verdict.score >= verdict.required


def test_stopped_rspamd_gives_an_error_verdict_quickly(rspamd):
    url = rspamd.url
    rspamd.stop()
    started = time.monotonic()
    verdict = scan(url, message(), timeout=2)
    assert time.monotonic() - started < 2.5
    assert verdict.error and not verdict.scanned and verdict.action == ""
    assert "unreachable" in verdict.error


def _serve(handler, client_timeout: float) -> tuple[SpamVerdict, float]:
    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        async with server:
            verdict = await RspamdClient(f"http://127.0.0.1:{port}", client_timeout).scan(message(), **ENVELOPE)
        return verdict, time.monotonic() - started
    return asyncio.run(main())


def test_server_that_never_answers_times_out():
    async def silent(reader, writer):
        await reader.read(1 << 20)
        await asyncio.sleep(30)

    verdict, elapsed = _serve(silent, 0.5)
    assert 0.45 < elapsed < 1.5
    assert not verdict.scanned and "0.5s" in verdict.error


def test_http_error_and_non_json_replies_are_errors():
    async def error(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 500 oops\r\nContent-Length: 19\r\n\r\n{"error":"no task"}')
        await writer.drain()
        writer.close()

    async def garbage(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!")
        await writer.drain()
        writer.close()

    async def hangs_up(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    for handler, words in ((error, "HTTP 500: no task"), (garbage, "not a scan result"), (hangs_up, "closed")):
        verdict, _ = _serve(handler, 2)
        assert not verdict.scanned and words in verdict.error, verdict


def test_envelope_cannot_inject_request_headers():
    headers = envelope_headers(ip="192.0.2.1", helo="evil\r\nRcpt: victim@example.com", mail_from="a@b.com",
                               rcpts=["john@alias-example.com"], hostname="")
    assert [name for name, _ in headers].count("Rcpt") == 1
    assert all("\r" not in v and "\n" not in v for _, v in headers)
    assert "Hostname" not in dict(headers)  # empty values are not sent


def test_x_spam_headers():
    verdict = SpamVerdict(action="add header", score=7.2, required=6.0, symbols=("SYM1", "SYM2"))
    assert x_spam_headers(verdict) == (b"X-Spam-Flag: YES\r\nX-Spam-Score: 7.20\r\n"
                                       b"X-Spam-Status: Yes, score=7.20 required=6.00 tests=SYM1,SYM2\r\n")


def test_x_spam_headers_fold_a_long_symbol_list():
    names = tuple(f"SYMBOL_NUMBER_{i}" for i in range(200))
    block = x_spam_headers(SpamVerdict(action="reject", score=21.0, required=15.0, symbols=names))
    lines = block.split(b"\r\n")
    assert block.endswith(b"\r\n") and b"\n" not in block.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in lines) and max(len(line) for line in lines) <= 998
    status = b"".join(lines[2:]).replace(b"\t", b"").decode()
    assert status.split("tests=")[1].split(",") == list(names)
