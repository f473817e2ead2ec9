"""Malformed MIME over the whole path (SMTP in, a real worker, the destination's sink): each message is refused
cleanly or forwarded with its bytes intact behind the headers we prepend, and no worker job crashes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.net import wait_for
from mailferry.models.message import DELIVERED, DONE
from tests.smtp.delivery.helpers import deliveries, message
from tests.smtp.inbound.conftest import message_count

FROM = b"From: Alice <alice@sender.test>\r\n"
TO = b"To: hello@alias.test\r\n"
ID = b"Message-ID: <m-1@sender.test>\r\n"
DATE = b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
BASIC = FROM + TO + b"Subject: test\r\n" + DATE + ID
# The fields the path prepends: ours (inbound results, trace, loop marker) and the alias domain's signatures.
PREPENDED = {b"authentication-results", b"received", b"x-mailferry-loop", b"dkim-signature", b"arc-seal",
             b"arc-message-signature", b"arc-authentication-results"}
ADDED_ID = rb"Message-ID: <[A-Z2-7]{16}@mx\.mailferry\.test>\r\n"
ADDED_DATE = rb"Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n"
FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]")  # a field name (printable, no colon), or folding
NUL_REFUSED = b"5.6.0"  # NUL in DATA may be refused (554 5.6.0) instead of forwarded


@dataclass(frozen=True)
class Specimen:
    name: str
    head: bytes  # the header section as sent ("" when there is none)
    body: bytes  # from the blank line on, or the whole message when it has no header section
    separator_added: bool = False  # no header section at all: the added fields and a blank line go first
    refused: str = ""  # the reply it must get instead (code and enhanced code), nothing stored or sent
    results: bytes = b""  # what our Authentication-Results on the forwarded copy must say

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    def expected(self) -> re.Pattern[bytes]:
        """What must end the forwarded copy: the original bytes, with a Message-ID and a Date where it had none."""
        names = {line.split(b":", 1)[0].strip().lower() for line in self.head.split(b"\r\n") if b":" in line}
        added = (b"" if b"message-id" in names else ADDED_ID) + (b"" if b"date" in names else ADDED_DATE)
        separator = b"\r\n" if self.separator_added else b""
        return re.compile(re.escape(self.head) + added + separator + re.escape(self.body) + rb"\Z", re.DOTALL)


def multipart(boundary: bytes, *parts: bytes, close: bool = True) -> bytes:
    body = b"\r\n".join(b"--" + boundary + b"\r\n" + part for part in parts)
    return b"\r\n" + body + (b"--" + boundary + b"--\r\n" if close else b"")


def nested(depth: int) -> tuple[bytes, bytes]:
    """`depth` multiparts, each the only part of its parent."""
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
                       for i in range(1, depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(1, depth)))
    head = BASIC + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n"
    return head, b"\r\n--b0\r\n" + opening + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + closing + b"\r\n--b0--\r\n"


MIME = BASIC + b"MIME-Version: 1.0\r\n"
FOLDED = b"X-Big: start\r\n" + b"".join(b"\tline %07d of a folded header\r\n" % i for i in range(33000))
MANY = b"".join(b"X-Many-%05d: value %05d\r\n" % (i, i) for i in range(30000))
CORPUS = [
    Specimen("boundary never used", MIME + b"Content-Type: multipart/mixed; boundary=\"abc\"\r\n",
             multipart(b"xyz", b"Content-Type: text/plain\r\n\r\nhello\r\n")),
    Specimen("unterminated boundary", MIME + b"Content-Type: multipart/mixed; boundary=\"abc\"\r\n",
             multipart(b"abc", b"Content-Type: text/plain\r\n\r\nno end\r\n", close=False)),
    Specimen("empty boundary", MIME + b"Content-Type: multipart/mixed; boundary=\"\"\r\n",
             multipart(b"", b"\r\nempty\r\n")),
    Specimen("boundary without parameter", MIME + b"Content-Type: multipart/alternative\r\n",
             b"\r\n--\r\n\r\n--\r\n"),
    Specimen("boundary over 70 characters", MIME + b"Content-Type: multipart/mixed; boundary=" + b"q" * 300 + b"\r\n",
             multipart(b"q" * 300, b"\r\nlong\r\n")),
    Specimen("8-bit in headers", FROM + TO + DATE + ID + b"Subject: caf\xc3\xa9 \xff\xfe\x80\r\n"
             b"X-Latin1: J\xf6rg M\xfcller\r\n", b"\r\nbody\r\n"),
    Specimen("8-bit display name", b"From: \"J\xc3\xb6rg \xff\" <alice@sender.test>\r\n" + TO + DATE + ID,
             b"\r\nbody\r\n"),
    Specimen("NUL in the Subject", FROM + TO + DATE + ID + b"Subject: nul\x00here\r\n", b"\r\nbody\r\n"),
    Specimen("NUL in a header name", BASIC + b"X-N\x00ul: value\r\n", b"\r\nbody\r\n"),
    Specimen("NUL in the body", BASIC, b"\r\nbefore\x00after\r\n\x00\r\n"),
    Specimen("no From", TO + b"Subject: nobody\r\n" + DATE + ID, b"\r\nbody\r\n"),
    Specimen("no Date", FROM + TO + ID, b"\r\nbody\r\n"),
    Specimen("no Message-ID", FROM + TO + DATE, b"\r\nbody\r\n"),
    Specimen("no Message-ID and no Date", FROM + TO, b"\r\nbody\r\n"),
    Specimen("no header/body separator", BASIC, b""),
    Specimen("empty header section", b"", b"\r\nbody only, after a blank line\r\n"),
    Specimen("body only", b"", b"just text, no headers\r\nsecond line\r\n", separator_added=True),
    Specimen("header without colon", BASIC + b"This is not a header\r\n", b"\r\nbody\r\n", results=b"dkim=none"),
    Specimen("signed, with a line that is no field", BASIC + b"DKIM-Signature: v=1; d=sender.test; s=x\r\n"
             b"not a field\r\n", b"\r\nbody\r\n", results=b"dkim=permerror"),
    Specimen("header with empty name", BASIC + b": no name\r\n", b"\r\nbody\r\n"),
    Specimen("continuation first", b"\tcontinued from nowhere\r\n" + BASIC, b"\r\nbody\r\n"),
    Specimen("invalid base64", MIME + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
             b"\r\n!!!not base64***\r\n====\r\nQUJD=RA\r\n"),
    Specimen("invalid quoted-printable", MIME + b"Content-Transfer-Encoding: quoted-printable\r\n",
             b"\r\nbad =ZZ escape =\r\n=\r\n=4\r\n"),
    Specimen("unknown charset", MIME + b"Content-Type: text/plain; charset=x-no-such-charset\r\n",
             b"\r\n\xe9\xe8\r\n"),
    Specimen("RFC 2047 garbage", FROM + TO + DATE + ID + b"Subject: =?utf-8?B?!!!?= =?x-bad?Q?=ZZ?= =?utf-8?q?\r\n"
             b"X-Enc: =?=?utf-8?b?Pz8=?=?= =??=\r\n", b"\r\nbody\r\n"),
    Specimen("one 1 MB folded header", BASIC + FOLDED, b"\r\nbody\r\n"),
    Specimen("30000 headers", BASIC + MANY, b"\r\nbody\r\n"),
    Specimen("200 nested multiparts", *nested(200)),
    Specimen("blank line only", b"", b"\r\n"),
    Specimen("whitespace-only continuations", BASIC + b"X-Empty:\r\n \r\n\t\r\n \t \r\n", b"\r\nbody\r\n"),
    Specimen("two From fields", BASIC + b"From: mallory@other.test\r\n", b"\r\nbody\r\n"),
    Specimen("From group syntax", b"From: undisclosed:;\r\n" + TO + DATE + ID, b"\r\nbody\r\n"),
    Specimen("garbage DKIM-Signature", BASIC + b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=x; h=from:"
             b"message-id; bh=!!!; b=\x80\xff\r\nDKIM-Signature: ;;;===\r\n", b"\r\nbody\r\n"),
    Specimen("garbage ARC set", BASIC + b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.test; s=s; b=!!\r\n"
             b"ARC-Message-Signature: i=x; garbage\r\nARC-Authentication-Results: i=999999999999999999999\r\n",
             b"\r\nbody\r\n"),
    Specimen("bare LF in a header", BASIC + b"X-Split: one\ntwo\r\n", b"\r\nbody\r\n", refused="550 5.6.11"),
    Specimen("bare CR in the body", BASIC, b"\r\nfirst\rsecond\r\n", refused="550 5.6.11"),
    Specimen("a 1500-octet line", BASIC, b"\r\n" + b"b" * 1500 + b"\r\n", refused="500 5.5.6"),
    Specimen("31 Received headers", b"Received: from a by b; Thu, 03 Dec 2026 10:00:00 +0000\r\n" * 31 + BASIC,
             b"\r\nbody\r\n", refused="554 5.4.6"),
    Specimen("998-octet lines", BASIC + b"X-Long: " + b"h" * 988 + b"\r\n", b"\r\n" + b"b" * 998 + b"\r\n"),
]


def refused_for_nul(specimen: Specimen, code: int, reply: bytes) -> bool:
    return b"\x00" in specimen.raw and code == 554 and reply.startswith(NUL_REFUSED)


def assert_forwarded_intact(data: bytes, specimen: Specimen) -> None:
    match = specimen.expected().search(data)
    assert match, f"{specimen.name}: the forwarded copy does not end with the original"
    prepended = data[:match.start()]
    names = {line.split(b":", 1)[0].lower() for line in prepended.split(b"\r\n") if line and line[:1] not in b" \t"}
    assert names <= PREPENDED, (specimen.name, names - PREPENDED)
    assert specimen.results in prepended, (specimen.name, prepended)


def assert_no_job_crashed(log: str) -> None:
    for line in log.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        assert entry.get("level") not in ("error", "critical") and "exc" not in entry, line
    assert "Traceback" not in log, log[-3000:]


def forward_one(forwarding, specimen: Specimen) -> None:
    """Sends `specimen` and checks its one clean outcome: forwarded intact and DELIVERED, or NUL refused, unstored."""
    before, stored = len(forwarding.sink.messages), message_count(forwarding.db)
    code, reply = forwarding.send(specimen.raw)
    if specimen.refused or refused_for_nul(specimen, code, reply):
        assert f"{code} {reply.decode()}".startswith(specimen.refused), (specimen.name, code, reply)
        assert (len(forwarding.sink.messages), message_count(forwarding.db)) == (before, stored), specimen.name
        return
    assert code == 250, (specimen.name, code, reply)
    message_id = reply.rsplit(b" ", 1)[1].decode()
    wait_for(lambda: len(forwarding.sink.messages) > before, timeout=30,
             what=f"{specimen.name} delivered; worker log:\n{forwarding.worker.log()[-3000:]}")
    [got] = forwarding.sink.messages[before:]
    assert_forwarded_intact(got.data, specimen)
    wait_for(lambda: message(forwarding.db, message_id).state == DONE, what=f"{specimen.name} settled")
    assert [d.state for d in deliveries(forwarding.db, message_id)] == [DELIVERED]


def test_the_malformed_mime_corpus_is_forwarded_intact_or_refused_cleanly(forwarding):
    for specimen in CORPUS:
        forward_one(forwarding, specimen)
    assert_no_job_crashed(forwarding.worker.log())


HEADER_NAMES = st.one_of(
    st.sampled_from([b"Subject", b"From", b"To", b"Content-Type", b"Content-Transfer-Encoding", b"MIME-Version",
                     b"Reply-To", b"DKIM-Signature", b"ARC-Seal", b"Received", b"Sender", b"List-Id"]),
    st.binary(min_size=1, max_size=40).filter(lambda n: b"\r" not in n and b"\n" not in n and b":" not in n))
# Header values: any bytes but a lone CR or LF (refused at DATA, covered elsewhere), folded with CRLF + WSP.
VALUE_BYTES = st.binary(max_size=120).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))
HEADER_VALUES = st.lists(VALUE_BYTES, min_size=1, max_size=3).map(lambda parts: b"\r\n\t".join(parts))


@st.composite
def specimens(draw) -> Specimen:
    """Some of the usual fields (any missing, in any order) among random ones, and a body of random lines."""
    usual = draw(st.lists(st.sampled_from([FROM, TO, b"Subject: test\r\n", DATE, ID]), unique=True))
    fields = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8))
    head = b"".join(usual) + b"".join(name + b":" + value + b"\r\n" for name, value in fields)
    body = b"\r\n" + b"".join(line + b"\r\n" for line in draw(st.lists(VALUE_BYTES, max_size=5)))
    if draw(st.integers(0, 9)) == 0:  # a lone CR or LF anywhere (every CR and LF so far is in a CRLF pair)
        raw = head + body
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from((b"\r", b"\n"))) + raw[at:]
        return Specimen("generated with a bare line ending", b"", raw, refused="550 5.6.11")
    if head and not FIELD_START.match(head):  # RFC 5322 2.2: no field name and colon, so all of it is body
        return Specimen("generated", b"", head + body, separator_added=True)
    return Specimen("generated", head, body)


@settings(max_examples=max(10, settings.default.max_examples // 3),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specimen=specimens())
def test_generated_headers_and_bodies_are_forwarded_intact_or_refused_cleanly(forwarding, specimen):
    """One inbound server, worker and sink serve every example (the fixture is set up once per test)."""
    forward_one(forwarding, specimen)
    assert_no_job_crashed(forwarding.worker.log())
