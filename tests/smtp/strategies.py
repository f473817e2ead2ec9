"""Hypothesis strategies for SMTP sessions: command lines, DATA payloads and the packets they travel in."""

from __future__ import annotations

from hypothesis import strategies as st

VERBS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "EXPN", "HELP", "QUIT", "STARTTLS",
         "AUTH", "BDAT")
VALID_RCPT = "john@alias.test"
# Arguments close to what the server parses: valid, refused and malformed addresses, ESMTP parameters.
ARGUMENTS = (
    "FROM:<alice@sender.test>", "FROM:<>", "FROM:alice@sender.test", "FROM:<alice@sender.test> SIZE=10",
    "FROM:<alice@sender.test> SIZE=999999999999", "FROM:<alice@sender.test> BODY=8BITMIME",
    "FROM:<alice@sender.test> BODY=BINARYMIME", "FROM:<alice@sender.test> SMTPUTF8", "FROM:<a@b> RET=HDRS",
    f"TO:<{VALID_RCPT}>", "TO:<JOHN@ALIAS.TEST>", "TO:<anything@catchall.test>", "TO:<nobody@alias.test>",
    "TO:<off@alias.test>", "TO:<ghost@unverified.test>", "TO:<x@foreign.test>", "TO:<user%other@alias.test>",
    "TO:<user!host@alias.test>", "TO:<@a.test:john@alias.test>", 'TO:<"john@x"@alias.test>',
    "TO:<john@[127.0.0.1]>", "TO:<john@alias.test.>", "TO:<" + "a" * 70 + "@alias.test>", "TO:<>",
    "TO:<john@alias.test> NOTIFY=NEVER", "TO:<SRS0=abcd=ZZ=sender.test=alice@alias.test>", "FROM:", "TO:", ":",
    "client.example.org", "[127.0.0.1]", "PLAIN AGxpY2UAc2VjcmV0", "LOGIN", "CRAM-MD5", "=", "*", "10 LAST", "0",
    "john", "<john@alias.test>", "=?utf-8?q?x?=",
)
LINE_ENDINGS = (b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r")
# What ends DATA for some MTA but not for RFC 5321 (smtpsmug's list), then what would follow a real end.
SMUGGLING_ENDS = (b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n", b"\r.\n", b"\n.\r", b"\r\n\x00.\r\n",
                  b"\r\n.\x00\r\n", b"\r\n.\r\n")


@st.composite
def random_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.lower() if flip else c for c, flip in zip(word, flips, strict=True))


def verbs() -> st.SearchStrategy[str]:
    unknown = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)
    return st.one_of(st.sampled_from(VERBS).flatmap(random_case), unknown)


def arguments() -> st.SearchStrategy[bytes]:
    known = st.sampled_from(ARGUMENTS).map(str.encode)
    junk = st.binary(max_size=80)
    printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60).map(str.encode)
    long = st.integers(min_value=400, max_value=3000).map(lambda n: b"x" * n)
    return st.one_of(known, known, printable, junk, long, st.just(b""))


@st.composite
def command_lines(draw) -> bytes:
    """One command line with its line ending: a verb (any case) and an argument, or raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=600))
    verb = draw(verbs()).encode()
    argument = draw(arguments())
    separator = draw(st.sampled_from((b" ", b" ", b"  ", b"\t", b"")))
    line = verb + (separator + argument if argument else b"")
    return line + draw(st.sampled_from(LINE_ENDINGS))


def header_blocks() -> st.SearchStrategy[bytes]:
    """Header-like lines of any bytes but CR and LF (names, values, no colon at all), then a blank line."""
    line = st.one_of(st.binary(max_size=60), st.tuples(st.binary(max_size=20), st.binary(max_size=40))
                     .map(lambda nv: nv[0] + b":" + nv[1])).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    return st.lists(line, min_size=1, max_size=6).map(lambda lines: b"".join(x + b"\r\n" for x in lines) + b"\r\n")


@st.composite
def data_payloads(draw) -> bytes:
    """What a client sends after DATA: header and body lines, dot lines, a smuggled second transaction."""
    parts = [draw(st.one_of(st.just(b"From: alice@sender.test\r\nSubject: fuzz\r\n\r\n"), header_blocks()))]
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(st.one_of(
            st.binary(max_size=200),
            st.sampled_from(SMUGGLING_ENDS).map(lambda end: end + f"MAIL FROM:<a@x.test>\r\nRCPT TO:<{VALID_RCPT}>\r\n"
                                                .encode() + b"DATA\r\nSubject: smuggled\r\n\r\nx\r\n"),
            st.sampled_from((b".\r\n", b"..\r\n", b". \r\n", b"\r\n", b".", b"\x00", b"\xff\xfe"))
        )))
    parts.append(draw(st.sampled_from((b"\r\n.\r\n", b"\r\n.\r\n", b".\r\n", b"\n.\n", b""))))
    return b"".join(parts)


@st.composite
def transactions(draw) -> bytes:
    """A mostly well-formed transaction to a valid alias, pipelined, with a random DATA payload."""
    mail_from = draw(st.sampled_from((b"<alice@sender.test>", b"<>", b"<alice@sender.test> BODY=8BITMIME")))
    return (b"EHLO client.example.org\r\nMAIL FROM:" + mail_from + b"\r\nRCPT TO:<" + VALID_RCPT.encode()
            + b">\r\nDATA\r\n" + draw(data_payloads()))


@st.composite
def starttls_tails(draw) -> tuple[bytes, bytes]:
    """(STARTTLS with commands pipelined behind it, which RFC 3207 5 says must be discarded; what the client
    sends as its handshake once it has the 220: random bytes, or whole TLS records that are no ClientHello)."""
    hello = st.sampled_from((b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", b"\x16\x03\x03\x00\x05hello",
                             b"\x15\x03\x03\x00\x02\x02\x28"))
    injected = draw(st.lists(command_lines(), max_size=3))
    return b"EHLO client.example.org\r\nSTARTTLS\r\n" + b"".join(injected), draw(st.one_of(hello, st.binary()))


@st.composite
def sessions(draw) -> tuple[bytes, bytes | None]:
    """One client session: (command lines, DATA payloads and transactions in any order; None, or the bytes of
    a TLS handshake when it ends in STARTTLS)."""
    piece = st.one_of(command_lines(), command_lines(), command_lines(), data_payloads(), transactions())
    pieces = draw(st.lists(piece, min_size=1, max_size=12))
    if draw(st.integers(0, 7)):
        return b"".join(pieces), None
    starttls, handshake = draw(starttls_tails())
    return b"".join(pieces) + starttls, handshake


@st.composite
def packets(draw, data: bytes) -> list[bytes]:
    """`data` split at random offsets: how a pipelining client's writes arrive."""
    if len(data) < 2:
        return [data]
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=6))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


CLEAN_HEADERS = (b"From: alice@sender.test\r\nSubject: pipelined\r\nMessage-ID: <p@sender.test>\r\n"
                 b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n")


def messages() -> st.SearchStrategy[bytes]:
    """Well-formed messages, now and then one blank line and nothing else."""
    return st.one_of(built_messages(), built_messages(), built_messages(), st.just(b"\r\n"))


@st.composite
def built_messages(draw) -> bytes:
    """A well-formed message: our headers (now and then none), then lines of any bytes but CR, LF and NUL
    (empty ones, dots, 8-bit), each ending in CRLF. NUL may be refused at DATA: the MIME corpus covers it."""
    lines = draw(st.lists(st.one_of(st.sampled_from((b"", b".", b"..", b". x")), st.binary(max_size=200)),
                          max_size=8))
    lines = [line.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"") for line in lines]
    headers = draw(st.sampled_from((CLEAN_HEADERS, CLEAN_HEADERS, CLEAN_HEADERS, b"")))
    return headers + b"".join(line + b"\r\n" for line in lines)


def dot_stuffed(message: bytes) -> bytes:
    """`message` as DATA carries it (RFC 5321 4.5.2), terminator included."""
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n"))
    return stuffed + b".\r\n"
