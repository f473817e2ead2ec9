"""The chunked DATA reader on a real asyncio StreamReader fed the bytes a client would send."""

from __future__ import annotations

import asyncio

import pytest

from smtp import replies
from smtp.data_reader import DataResult, read_data


def run(chunks: list[bytes], size_limit: int | None = 10_000, line_limit: int = 1001):
    """read_data over the chunks; `leftover` also holds what it left unread in the reader."""

    async def main():
        reader = asyncio.StreamReader(limit=line_limit)

        async def feed():
            for chunk in chunks:
                reader.feed_data(chunk)
                await asyncio.sleep(0)

        feeder = asyncio.ensure_future(feed())
        result = await read_data(reader, size_limit, line_limit)
        await feeder
        reader.feed_eof()
        return DataResult(result.content, result.error, result.leftover + await reader.read())

    return asyncio.run(main())


def test_empty_message():
    result = run([b".\r\nQUIT\r\n"])
    assert (result.content, result.error, result.leftover) == (b"", None, b"QUIT\r\n")


def test_dot_unstuffing_and_leftover():
    result = run([b"Subject: x\r\n\r\n..leading dot\r\n..\r\n...\r\nend\r\n.\r\nNOOP\r\n"])
    assert result.content == b"Subject: x\r\n\r\n.leading dot\r\n.\r\n..\r\nend\r\n"
    assert result.leftover == b"NOOP\r\n"


@pytest.mark.parametrize("split", range(1, 12))
def test_terminator_split_across_chunks(split):
    wire = b"a\r\nbc\r\n.\r\nRSET\r\n"
    result = run([wire[:split], wire[split:]])
    assert (result.content, result.leftover) == (b"a\r\nbc\r\n", b"RSET\r\n")


def test_byte_by_byte():
    wire = b"x\r\n..\r\ny\r\n.\r\n"
    result = run([wire[i:i + 1] for i in range(len(wire))])
    assert result.content == b"x\r\n.\r\ny\r\n"


def test_dot_lines_that_are_not_the_terminator():
    result = run([b"a\r\n. \r\n.x\r\nb.\r\n.\r\n"])
    assert result.content == b"a\r\n \r\nx\r\nb.\r\n"


def test_bare_lf_dot_is_not_a_terminator():
    result = run([b"a\n.\nb\r\n.\r\nNOOP\r\n"])
    assert (result.error, result.leftover) == (replies.BARE_LINE_ENDING, b"NOOP\r\n")


def test_size_limit():
    assert run([b"x" * 50 + b"\r\n.\r\n"], size_limit=52).content == b"x" * 50 + b"\r\n"
    too_big = run([b"x" * 51 + b"\r\n.\r\nQUIT\r\n"], size_limit=52)
    assert (too_big.content, too_big.error, too_big.leftover) == (None, replies.MESSAGE_TOO_BIG, b"QUIT\r\n")


def test_oversize_stream_is_not_kept_in_memory_but_still_ends_at_the_terminator():
    chunks = [b"y" * 4000 + b"\r\n" for _ in range(100)] + [b".", b"\r", b"\n", b"NOOP\r\n"]
    result = run(chunks, size_limit=1000)
    assert (result.error, result.leftover) == (replies.MESSAGE_TOO_BIG, b"NOOP\r\n")


def test_line_length_limit_counts_the_crlf():
    assert run([b"a" * 999 + b"\r\n.\r\n"]).error is None
    assert run([b"a" * 1000 + b"\r\n.\r\n"]).error == replies.LINE_TOO_LONG
    assert run([b"short\r\n" + b"b" * 1000 + b"\r\nshort\r\n.\r\n"]).error == replies.LINE_TOO_LONG


def test_connection_closed_during_data():
    async def main():
        reader = asyncio.StreamReader()
        reader.feed_data(b"partial\r\n")
        reader.feed_eof()
        await read_data(reader, 1000, 1001)

    with pytest.raises(ConnectionResetError):
        asyncio.run(main())


@pytest.mark.parametrize("body", [b"a\nb\r\n", b"a\rb\r\n", b"ok\r\n\nx\r\n", b"x\r\r\n"])
def test_bare_cr_or_lf_is_refused(body):
    result = run([body + b".\r\nNOOP\r\n"])
    assert (result.error, result.leftover) == (replies.BARE_LINE_ENDING, b"NOOP\r\n")


def test_bare_lf_in_a_later_chunk_is_refused():
    chunks = [b"line %d\r\n" % n for n in range(100)] + [b"tail\nmore\r\n", b".\r\n"]
    assert run(chunks, size_limit=None).error == replies.BARE_LINE_ENDING


def test_long_line_split_over_many_chunks_without_crlf():
    chunks = [b"z" * 700 for _ in range(10)] + [b"\r\n.\r\n"]
    assert run(chunks, size_limit=None).error == replies.LINE_TOO_LONG


def test_dot_at_the_start_of_every_chunk_is_unstuffed_once():
    chunks = [b"..a\r\n", b"..b\r\n", b".\r\n"]
    assert run(chunks).content == b".a\r\n.b\r\n"


def test_many_chunks_reassemble_exactly():
    lines = [b"%06d " % n + b"x" * (n % 90) + b"\r\n" for n in range(5000)]
    wire = b"".join(lines) + b".\r\n"
    chunks = [wire[i:i + 4093] for i in range(0, len(wire), 4093)]
    assert run(chunks, size_limit=None).content == b"".join(lines)


@pytest.mark.parametrize("chunks, content", [
    ([b"\r\n.\r\nNOOP\r\n"], b"\r\n"),                           # DATA at once followed by an empty message
    ([b"body\r\n", b"\r\n.\r\nNOOP\r\n"], b"body\r\n\r\n"),        # the empty last line arrives with the dot
    ([b"body\r\n\r\n", b".\r\nNOOP\r\n"], b"body\r\n\r\n"),
])
def test_an_empty_last_line_leaves_nothing_behind_but_the_next_command(chunks, content):
    result = run(chunks)
    assert (result.content, result.error, result.leftover) == (content, None, b"NOOP\r\n")


@pytest.mark.parametrize("body", [b"a\x00b", b"one\r\n\x00.\r\ntwo", b"\x00", b"x" * 500 + b"\x00"])
def test_nul_is_refused_and_the_section_still_ends_at_the_terminator(body):
    result = run([b"Subject: x\r\n\r\n" + body + b"\r\n.\r\nNOOP\r\n"])
    assert (result.content, result.error, result.leftover) == (None, replies.NUL_IN_DATA, b"NOOP\r\n")
