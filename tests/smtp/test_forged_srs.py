"""Red team: an SRS address forged with the public default SECRET_KEY must not make us an open relay.

With SRS derived from the known default, anyone could compute a valid SRS address of a hosted domain whose
reverse is any foreign mailbox, get RCPT 250 and have the mail relayed there. Development mode starts with a
weak key, so it is where the forgery would work if any secret still came from that key.
"""

from __future__ import annotations

from sqlalchemy import func, select

from harness.settings import make_settings
from mailferry.models import Message
from mailferry.queue import get_queue
from mailferry.secret_keys import PUBLIC_SECRET_KEYS
from smtp import replies
from smtp.server import ServerThread
from smtp.srs import Srs
from tests.smtp.conftest import VERIFIED, RawClient
from tests.smtp.test_server_session import HEADERS


def test_srs_forged_with_the_public_default_key_is_refused_at_rcpt(world, db, db_url, redis_url, redis_conn,
                                                                    dns_server):
    public_default = sorted(PUBLIC_SECRET_KEYS)[0]
    settings = make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url, SMTP_LISTEN="127.0.0.1:0",
                             DNS_NAMESERVERS=dns_server.nameservers, SECRET_KEY=public_default,
                             MAILFERRY_ENV="development")
    forged = Srs(f"srs:{public_default}").forward("victim@foreign.example", VERIFIED)
    thread = ServerThread(settings)
    client = RawClient(thread.start())
    try:
        assert client.cmd("EHLO attacker.example").startswith("250")
        assert client.cmd("MAIL FROM:<spam@attacker.example>").startswith("250")
        assert client.cmd(f"RCPT TO:<{forged}>") == replies.BAD_SRS_ADDRESS
        if client.cmd("DATA").startswith("354"):  # only when the RCPT was wrongly accepted
            client.send(HEADERS + b"relay me\r\n.\r\n")
            client.reply()
    finally:
        client.close()
        thread.stop()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
    assert get_queue(redis_conn, settings.RQ_QUEUE).count == 0
