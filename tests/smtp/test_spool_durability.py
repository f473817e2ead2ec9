"""The spool's commit before the 250 is durable on both databases: the flush setting is read on the very
connection that inserted the accepted message, inside its transaction."""

from __future__ import annotations

import smtplib

from sqlalchemy import event

from smtp.server import ServerThread
from tests.mailferry.test_db import DURABLE
from tests.smtp.test_server_accept import BODY

QUERY = {"sqlite": "PRAGMA synchronous", "postgresql": "SHOW synchronous_commit"}


def test_the_connection_that_spools_commits_durably(world, settings):
    seen: list = []
    with ServerThread(settings.replace(DELIVERY_ASYNC_COMMIT=True)) as thread:  # the workers' choice is not the spool's
        engine = thread.server.db.engine
        kind = engine.dialect.name

        @event.listens_for(engine, "after_cursor_execute")
        def spooled(conn, cursor, statement, parameters, context, executemany) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
                probe = conn.connection.dbapi_connection.cursor()
                probe.execute(QUERY[kind])
                seen.append(probe.fetchone()[0])
                probe.close()

        with smtplib.SMTP(*thread.address, timeout=10) as client:
            client.ehlo("c.example.org")
            client.mail("s@example.org")
            client.rcpt("john@alias.test")
            code, _ = client.data(BODY)
    assert code == 250
    assert seen == [DURABLE[kind]]
