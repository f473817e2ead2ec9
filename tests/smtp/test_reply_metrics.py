"""Every refusal the server sends is counted under the reason its reply constant stands for."""

from __future__ import annotations

import pytest

from smtp import replies
from smtp.reply_metrics import refusal_reason

CASES = [
    (replies.UNKNOWN_RECIPIENT, "unknown_recipient"),
    (replies.UNCONFIRMED_DESTINATION, "unknown_recipient"),
    (replies.BAD_SRS_ADDRESS, "unknown_recipient"),
    (replies.RELAY_DENIED, "relay_denied"),
    (replies.SOURCE_ROUTE, "relay_denied"),
    (replies.DMARC_REJECTED.format(domain="bank.test"), "dmarc"),
    (replies.AUTH_REJECTED.format(why="SPF fail"), "authentication"),
    (replies.SPAM_REJECTED, "spam"),
    (replies.RATE_LIMITED_SENDER, "rate_limit"),
    (replies.RATE_LIMITED_RECIPIENT, "rate_limit"),
    (replies.HARVESTING, "rate_limit"),
    (replies.TOO_MANY_CONNECTIONS.format(host="mx.test"), "rate_limit"),
    (replies.MESSAGE_TOO_BIG, "size"),
    (replies.MAIL_LOOP, "loop"),
    (replies.TEMPORARY_FAILURE, "temporary"),
    (replies.SPAM_DEFERRED, "temporary"),
    (replies.AUTH_TEMPORARY, "temporary"),
    (replies.IDLE_TIMEOUT.format(host="mx.test"), "temporary"),
    (replies.UNKNOWN_COMMAND, "other"),
    (replies.BARE_LINE_ENDING, "other"),
]


@pytest.mark.parametrize("reply,reason", CASES)
def test_refusal_reason(reply, reason):
    assert refusal_reason(reply) == reason


@pytest.mark.parametrize("reply", [replies.OK_RECIPIENT, replies.QUEUED.format(id="ABC"), "354 End data with"])
def test_a_reply_that_refuses_nothing_has_no_reason(reply):
    assert refusal_reason(reply) is None
