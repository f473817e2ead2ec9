"""What the fault tests share: mail sent with a unique token per message, what each sender was told, and the
count of copies each destination's sink took, checked against the database once every message is final."""

from __future__ import annotations

import smtplib
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select

from harness.net import wait_for
from mailferry.models import Delivery, Message
from mailferry.models.message import DONE
from tests.smtp.delivery.sink import Sink
from tests.smtp.test_server_accept import QUEUED_REPLY


def new_token() -> str:
    return f"fault-{uuid.uuid4().hex}"


def body(token: str, padding: int = 0) -> bytes:
    """A message naming its token in the Subject and the body; `padding` bytes of body lines make it larger."""
    lines = b"".join(b"%s\r\n" % (b"x" * 76) for _ in range(padding // 78))
    return (b"From: Alice <alice@sender.test>\r\nTo: hello@alias.test\r\nSubject: %s\r\n"
            b"Message-ID: <%s@sender.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n%s\r\n%s"
            % (token.encode(), token.encode(), token.encode(), lines))


@dataclass
class Sent:
    token: str
    raw: bytes
    rcpts: tuple[str, ...]
    code: int | None = None  # None: the connection broke before a reply to DATA
    reply: str = ""
    message_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.code == 250


@dataclass
class Mailbag:
    """Every message a test sent, with what the server answered."""

    sent: list[Sent] = field(default_factory=list)

    def send(self, address: tuple[str, int], rcpts: tuple[str, ...] = ("hello@alias.test",), padding: int = 0,
             timeout: float = 10) -> Sent:
        token = new_token()
        item = Sent(token, body(token, padding), rcpts)
        self.sent.append(item)
        try:
            with smtplib.SMTP(*address, timeout=timeout) as client:
                client.ehlo("client.sender.test")
                client.mail("alice@sender.test")
                for rcpt in rcpts:
                    code, reply = client.rcpt(rcpt)
                    if code != 250:
                        item.code, item.reply = code, reply.decode()
                        return item
                code, reply = client.data(item.raw)
                item.code, item.reply = code, reply.decode()
                if code == 250:
                    item.message_id = QUEUED_REPLY.match(reply).group(1).decode()
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError):
            pass
        except smtplib.SMTPResponseException as exc:  # e.g. 451 to MAIL FROM
            item.code, item.reply = exc.smtp_code, exc.smtp_error.decode()
        return item

    def accepted(self) -> list[Sent]:
        return [item for item in self.sent if item.accepted]


def copies(sinks: list[Sink], token: str) -> int:
    """How many copies of the message with this token the sinks took (over all their recipients)."""
    return sum(len(m.rcpt_tos) for sink in sinks for m in sink.messages if token.encode() in m.data)


def stored(db) -> dict[str, tuple[bytes, int, str]]:
    """Every message in the database: id -> (raw, number of deliveries, state)."""
    with db.session() as s:
        counts = dict(s.execute(select(Delivery.message_id, func.count()).group_by(Delivery.message_id)).all())
        return {m.id: (m.raw, counts.get(m.id, 0), m.state) for m in s.scalars(select(Message))}


def wait_all_final(db, timeout: float = 30, what: str = "") -> dict[str, tuple[bytes, int, str]]:
    def final():
        messages = stored(db)
        return messages if all(state == DONE for _, _, state in messages.values()) else None

    return wait_for(final, timeout=timeout, interval=0.2, what=f"every message final; {what}")


def assert_each_accepted_delivered_once(db, bag: Mailbag, sinks: list[Sink], timeout: float = 30,
                                        what: str = "") -> dict[str, tuple[bytes, int, str]]:
    """Waits until every stored message is final, then: each message stored is whole (its exact bytes, one
    delivery per recipient) and was delivered exactly once per destination; each 250 is among them; a
    message whose sender got no 250 is either absent (never delivered) or whole and delivered once."""
    messages = wait_all_final(db, timeout, what)
    by_raw = {raw: (mid, deliveries) for mid, (raw, deliveries, _) in messages.items()}
    assert len(by_raw) == len(messages), "the same message stored twice"
    assert set(by_raw) <= {item.raw for item in bag.sent}, "a stored message is not one that was sent whole"
    for item in bag.sent:
        present = by_raw.get(item.raw)
        if item.accepted:
            assert present == (item.message_id, len(item.rcpts)), item
            assert copies(sinks, item.token) == len(item.rcpts), item
        elif present is None:
            assert copies(sinks, item.token) == 0, item
        else:
            assert present[1] == len(item.rcpts) and copies(sinks, item.token) == len(item.rcpts), item
    return messages
