"""Log lines: one JSON object per line by default, one readable line with LOG_FORMAT=text."""

from __future__ import annotations

import json
import logging

import pytest

from harness.settings import make_settings
from mailferry.logs import JsonFormatter, TextFormatter
from mailferry.settings import SettingsError


def _record(**fields) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "smtp.handler", "levelname": "INFO", "levelno": logging.INFO,
                                    "msg": "queued %s", "args": ("ok",), "created": 1796355601.12, "msecs": 120})
    record.__dict__.update(fields)
    return record


def test_json_is_one_object_with_every_field():
    line = JsonFormatter().format(_record(message_id="abc123", size=4096))
    assert "\n" not in line
    assert json.loads(line) == {"ts": "2026-12-04T03:40:01.120Z", "level": "info", "logger": "smtp.handler",
                                "msg": "queued ok", "message_id": "abc123", "size": 4096}


def test_text_is_one_readable_line_with_the_fields_quoted_where_needed():
    line = TextFormatter().format(_record(message_id="abc123", size=4096, reply="250 2.0.0 Ok", rcpts=["a@b.test"]))
    assert line == ('2026-12-04T03:40:01.120Z INFO smtp.handler queued ok message_id=abc123 size=4096 '
                    'reply="250 2.0.0 Ok" rcpts="[\\"a@b.test\\"]"')


def test_text_keeps_the_traceback_below_the_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = _record(message_id="abc123", exc_info=sys.exc_info())
    first, *rest = TextFormatter().format(record).splitlines()
    assert first.endswith("queued ok message_id=abc123") and rest[-1] == "RuntimeError: boom"


def test_log_format_is_json_or_text():
    assert make_settings().LOG_FORMAT == "json" and make_settings(LOG_FORMAT="text").LOG_FORMAT == "text"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        make_settings(LOG_FORMAT="xml")
