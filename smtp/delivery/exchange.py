"""One SMTP transaction on an open connection: MAIL FROM, RCPT TO per recipient, DATA, the body.

Shared by DirectTransport (MX hosts) and RelayTransport (relays). When the server offers PIPELINING
(RFC 2920), MAIL FROM, every RCPT TO and DATA go out in one write and the body with its final dot in
another, so a transaction costs two round trips instead of 3 + recipients.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from .outcome import Reply


@dataclass
class Transaction:
    envelope_from: str
    recipients: list[str]
    data: bytes
    tag: object = None  # the caller's bookkeeping, handed back with the result


class NothingAccepted(smtplib.SMTPServerDisconnected):
    """The connection closed, failed or answered 421 before the MAIL FROM was accepted: nothing of the
    transaction was taken, so it can go again over another connection without being delivered twice."""

    def __init__(self, why: str, reply: Reply | None = None):
        super().__init__(why)
        self.reply = reply  # the 421, when the server said it was closing


def smtp_reply(code: int, message: bytes | str) -> Reply:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return Reply(code, " ".join(text.split()))


def wire_address(address: str) -> str:
    """The domain part as an IDNA A-label, so only a non-ASCII local part needs SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _has_8bit(data: bytes) -> bool:
    return not data.isascii()


def dot_stuffed(data: bytes) -> bytes:
    """The DATA body as sent (RFC 5321 4.5.2): a dot doubled at the start of every line, then CRLF.CRLF."""
    body = data.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def command_lines(*commands: str) -> str:
    """The commands with their CRLFs; like smtplib's putcmd, no CR or LF inside a command."""
    for command in commands:
        if "\r" in command or "\n" in command:
            raise ValueError(f"command contains prohibited newline characters: {command!r}")
    return "\r\n".join(commands) + "\r\n"


def reset(client: smtplib.SMTP) -> None:
    """RSET, for a transaction given up; a connection too broken to answer is dealt with by its next use."""
    try:
        client.rset()
    except (OSError, smtplib.SMTPException):
        pass


class Exchange:
    """Runs transactions; `timeout` for each reply, `data_timeout` for the reply to the final dot."""

    def __init__(self, timeout: float, data_timeout: float):
        self.timeout = timeout
        self.data_timeout = data_timeout

    def transaction(self, client: smtplib.SMTP, tx: Transaction) -> dict[str, Reply]:
        """MAIL, RCPT per recipient, DATA on an open session; per-recipient replies.
        Raises NothingAccepted when the connection is found closed (or closing) before the MAIL FROM is accepted,
        OSError or SMTPServerDisconnected when it is lost later."""
        sender, recipients = wire_address(tx.envelope_from), [wire_address(r) for r in tx.recipients]
        options = self._mail_options(client, tx.data)
        if not (sender.isascii() and all(r.isascii() for r in recipients)):
            if not client.has_extn("smtputf8"):
                refused = Reply(553, "5.6.7 destination does not support SMTPUTF8 for a non-ASCII address")
                return {r: refused for r in tx.recipients}
            options += " SMTPUTF8"
            client.command_encoding = "utf-8"
        mail = f"MAIL FROM:<{sender}>{options}"
        rcpts = [f"RCPT TO:<{r}>" for r in recipients]
        if client.has_extn("pipelining"):
            return self._pipelined(client, tx, mail, rcpts)
        return self._lockstep(client, tx, mail, rcpts)

    @staticmethod
    def _mail_options(client: smtplib.SMTP, data: bytes) -> str:
        options = ""
        if client.has_extn("size"):
            options += f" SIZE={len(data)}"
        if _has_8bit(data) and client.has_extn("8bitmime"):
            options += " BODY=8BITMIME"
        return options

    def _lockstep(self, client: smtplib.SMTP, tx: Transaction, mail: str, rcpts: list[str]) -> dict[str, Reply]:
        code, message = self._mail_reply(client, command_lines(mail))
        if code != 250:
            reset(client)
            return {r: smtp_reply(code, message) for r in tx.recipients}
        replies = {r: smtp_reply(*client.docmd(rcpt)) for r, rcpt in zip(tx.recipients, rcpts, strict=True)}
        accepted = [r for r in tx.recipients if replies[r].code in (250, 251)]
        if not accepted:
            reset(client)
            return replies
        return self._conclude(client, tx, replies, accepted, *client.docmd("DATA"))

    def _pipelined(self, client: smtplib.SMTP, tx: Transaction, mail: str, rcpts: list[str]) -> dict[str, Reply]:
        """RFC 2920: the envelope and DATA in one write, their replies read in order, then the body."""
        mail_code, mail_message = self._mail_reply(client, command_lines(mail, *rcpts, "DATA"))
        rcpt_replies = [client.getreply() for _ in rcpts]
        data_code, data_message = client.getreply()
        if mail_code != 250:
            self._abandon(client, data_code)
            return {r: smtp_reply(mail_code, mail_message) for r in tx.recipients}
        replies = {r: smtp_reply(code, message) for r, (code, message) in zip(tx.recipients, rcpt_replies, strict=True)}
        accepted = [r for r in tx.recipients if replies[r].code in (250, 251)]
        if not accepted:
            self._abandon(client, data_code)
            return replies
        return self._conclude(client, tx, replies, accepted, data_code, data_message)

    def _conclude(self, client: smtplib.SMTP, tx: Transaction, replies: dict[str, Reply], accepted: list[str],
                  data_code: int, data_message: bytes) -> dict[str, Reply]:
        """After the reply to DATA: the body when it was 354 (else RSET); its verdict is every accepted
        recipient's reply."""
        if data_code == 354:
            data_code, data_message = self._body(client, tx.data)
        else:
            reset(client)
        for recipient in accepted:
            replies[recipient] = smtp_reply(data_code, data_message)
        return replies

    @staticmethod
    def _mail_reply(client: smtplib.SMTP, commands: str) -> tuple[int, bytes]:
        """Send the MAIL FROM (and what is pipelined behind it); the reply to the MAIL FROM."""
        try:
            client.send(commands)
            code, message = client.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise NothingAccepted(str(exc) or type(exc).__name__) from exc
        if code == 421:
            reply = smtp_reply(code, message)
            raise NothingAccepted(str(reply), reply)
        return code, message

    def _body(self, client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """After a 354: the message and its final dot; the server's verdict, which may take data_timeout."""
        client.sock.settimeout(self.data_timeout)
        client.send(dot_stuffed(data))
        reply = client.getreply()
        client.sock.settimeout(self.timeout)
        return reply

    def _abandon(self, client: smtplib.SMTP, data_code: int) -> None:
        """No recipient to send the body to: end a DATA the server accepted anyway with an empty message
        (RFC 2920 3.1, its reply does not matter), else reset the transaction."""
        if data_code != 354:
            reset(client)
            return
        try:
            client.send(b".\r\n")
            client.getreply()
        except (OSError, smtplib.SMTPException):
            pass
