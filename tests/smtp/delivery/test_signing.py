"""The signing path's parse and relaxed body canonicalisation give exactly what dkimpy's own give."""

from __future__ import annotations

import random

import dkim
import pytest
from dkim.canonicalization import Relaxed

from smtp.delivery.signing import parse, relaxed_body

BODIES = [
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"one line",
    b"one line\r\n",
    b"a  b\t\tc \t d\r\n",
    b"trailing \r\ntabs\t\t\r\n \r\n\t\r\n",
    b" leading space\r\n\tleading tab\r\n",
    b".dot\r\n..two\r\n\r\n\r\n",
    b"mixed \t \t runs\r\nend  \r\n\r\n",
    b"no final newline  ",
    b"plain text with single spaces\r\nand lines\r\n\r\n",  # neither substitution needed
    b"only a trailing space \r\nhere\r\n",
    b"only a double  space\r\n",
]


def _fuzz(seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(rng.choice([b"a", b"bc", b" ", b"  ", b"\t", b" \t", b"\r\n", b"\r\n\r\n", b"."])
                    for _ in range(rng.randrange(0, 200)))


@pytest.mark.parametrize("body", BODIES + [_fuzz(seed) for seed in range(300)])
def test_relaxed_body_is_dkimpys(body):
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


HEADERS = b"From: A <a@example.org>\r\nSubject: hi\r\n\tfolded  there\r\nTo: b@example.org\r\n"


@pytest.mark.parametrize("message", [
    HEADERS + b"\r\n" + body for body in BODIES + [_fuzz(seed) for seed in range(50)]
] + [
    HEADERS,  # no blank line, no body
    b"\r\nbody only\r\n\r\nmore\r\n",  # no header block
    HEADERS + b"\r\nbare\nLF\r\n",  # not CRLF-only: dkimpy's own parse
    b"From someone Mon Jan 1\r\n" + HEADERS + b"\r\nbody\r\n",  # mbox From_ line
])
def test_parse_is_dkimpys(message):
    assert parse(message) == tuple(dkim.rfc822_parse(message))
