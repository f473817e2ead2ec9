"""The cached stand-ins for inspect.getmembers() and dir() that aiosmtpd calls per connection give what the
originals give, for the parts aiosmtpd reads."""

from __future__ import annotations

import inspect

from smtp.protocol import InboundSMTP, fast_dir, fast_getmembers


class Handler:
    def auth_CUSTOM(self, server, args):  # noqa: N802  (aiosmtpd's naming)
        return None

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        return "250 OK"


def test_getmembers_finds_the_same_auth_members_bound_to_the_object():
    handler = Handler()
    handler.auth_EXTRA = lambda server, args: None  # an instance attribute counts too
    session = InboundSMTP(handler, hostname="mx.test")
    for obj in (handler, session):
        expected = [(n, v) for n, v in inspect.getmembers(obj) if n.startswith("auth_")]
        assert fast_getmembers(obj) == expected


def test_dir_of_an_instance_matches_the_builtin():
    handler = Handler()
    handler.extra = 1
    session = InboundSMTP(handler, hostname="mx.test")
    for obj in (handler, session, Handler, 5):
        assert fast_dir(obj) == dir(obj)
