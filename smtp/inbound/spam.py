"""Asking rspamd about a received message: POST /checkv2 over asyncio streams (rspamd's HTTP protocol,
https://rspamd.com/doc/developers/protocol.html), the envelope as request headers, one verdict back.

rspamd trouble (refused, timeout, HTTP error, bad JSON) never raises: the verdict carries `error` instead,
so the caller decides whether an unscanned message is accepted.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SPAM_ACTIONS = ("add header", "rewrite subject", "soft reject", "reject")
_MAX_REPLY = 1 << 20
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SpamVerdict:
    action: str  # rspamd's action ("no action" ... "reject"); "" when not scanned
    score: float = 0.0
    required: float = 0.0  # rspamd's required_score
    symbols: tuple[str, ...] = ()  # symbols that fired, highest score first
    message: str = ""  # rspamd's messages["smtp_message"]: text for the sender
    error: str = ""  # why rspamd could not be asked

    @property
    def scanned(self) -> bool:
        return bool(self.action) and not self.error


class RspamdReplyError(Exception):
    """rspamd answered something that is not a scan result."""


class RspamdClient:
    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"rspamd URL must be http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 11333
        self.timeout = timeout

    async def scan(self, raw: bytes, *, ip: str, helo: str, mail_from: str, rcpts: list[str], hostname: str,
                   queue_id: str = "") -> SpamVerdict:
        """rspamd runs its own SPF, DKIM and DMARC from the envelope given here; ours cannot be handed to it
        (its http_headers module, off by default, turns rspamd's own checks off for every message)."""
        headers = envelope_headers(ip=ip, helo=helo, mail_from=mail_from, rcpts=rcpts, hostname=hostname,
                                   queue_id=queue_id)
        request = _request(f"{self.host}:{self.port}", headers, raw)
        try:
            status, body = await asyncio.wait_for(self._exchange(request), self.timeout)
            return parse_reply(status, body)
        except TimeoutError:  # before OSError: asyncio's timeout is one
            return SpamVerdict(action="", error=f"rspamd did not answer within {self.timeout:g}s")
        except (OSError, asyncio.IncompleteReadError) as exc:
            return SpamVerdict(action="", error=f"rspamd unreachable: {exc.strerror or exc}"
                               if isinstance(exc, OSError) else "rspamd closed the connection")
        except RspamdReplyError as exc:
            return SpamVerdict(action="", error=str(exc))

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            await writer.drain()
            return await _read_reply(reader)
        finally:
            writer.close()


def _clean(value: str) -> str:
    """A header value that cannot start another header (CR/LF and other controls removed)."""
    return _UNSAFE.sub("", value).strip()


def envelope_headers(*, ip: str, helo: str, mail_from: str, rcpts: list[str], hostname: str,
                     queue_id: str = "") -> list[tuple[str, str]]:
    pairs = [("IP", ip), ("Helo", helo), ("From", mail_from), ("Hostname", hostname), ("Queue-Id", queue_id)]
    pairs += [("Rcpt", r) for r in rcpts]
    return [(name, _clean(value)) for name, value in pairs if _clean(value)]


def _request(host: str, headers: list[tuple[str, str]], raw: bytes) -> bytes:
    lines = ["POST /checkv2 HTTP/1.1", f"Host: {host}", "Connection: close", f"Content-Length: {len(raw)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + raw


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise RspamdReplyError(f"rspamd sent no HTTP status line: {status_line[:60]!r}") from None
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
    if "content-length" in fields:
        length = int(fields["content-length"]) if fields["content-length"].isdigit() else -1
        if not 0 <= length <= _MAX_REPLY:
            raise RspamdReplyError(f"rspamd reply has a bad Content-Length: {fields['content-length'][:20]!r}")
        return status, await reader.readexactly(length)
    return status, await reader.read(_MAX_REPLY)


def parse_reply(status: int, body: bytes) -> SpamVerdict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if status != 200:
        detail = data.get("error") if isinstance(data, dict) else body[:80].decode("latin-1")
        raise RspamdReplyError(f"rspamd answered HTTP {status}: {detail}")
    if not isinstance(data, dict) or not isinstance(data.get("action"), str):
        raise RspamdReplyError("rspamd reply is not a scan result (no JSON action)")
    symbols = data.get("symbols") if isinstance(data.get("symbols"), dict) else {}
    ranked = sorted(symbols.values(), key=lambda s: (-float(s.get("score", 0)), s.get("name", "")))
    messages = data.get("messages") if isinstance(data.get("messages"), dict) else {}
    return SpamVerdict(action=data["action"], score=float(data.get("score", 0)),
                       required=float(data.get("required_score", 0)),
                       symbols=tuple(str(s.get("name", "")) for s in ranked),
                       message=str(messages.get("smtp_message", "")))


def x_spam_headers(verdict: SpamVerdict, flagged: bool = False) -> bytes:
    """X-Spam-Flag / X-Spam-Score / X-Spam-Status for a forwarded copy, folded at the symbol list, CRLF.
    `flagged`: our policy counts it as spam (a score over the domain's threshold) whatever rspamd's action."""
    spam = flagged or verdict.action in SPAM_ACTIONS
    score = f"{verdict.score:.2f}"
    status = f"X-Spam-Status: {'Yes' if spam else 'No'}, score={score} required={verdict.required:.2f} tests="
    return (f"X-Spam-Flag: {'YES' if spam else 'NO'}\r\nX-Spam-Score: {score}\r\n"
            + _fold(status, verdict.symbols or ("NONE",)) + "\r\n").encode("ascii", "replace")


def _fold(start: str, names: tuple[str, ...], width: int = 78) -> str:
    lines, line = [], start
    for i, name in enumerate(names):
        word = _clean(name)[:900] + ("," if i < len(names) - 1 else "")
        if len(line) + len(word) > width and line.strip() and not line.endswith("="):
            lines.append(line)
            line = "\t"
        line += word
    return "\r\n".join(lines + [line])
