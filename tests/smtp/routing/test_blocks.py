import pytest

from smtp.routing.blocks import is_ip_block


@pytest.mark.parametrize("code, text", [
    (554, "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org"),
    (550, "5.7.1 Our system has detected that this message is likely unsolicited mail. IP reputation"),
    (554, "blocked"),
    (550, "5.7.606 Access denied, banned sending IP [203.0.113.5]"),
    (421, "4.7.0 try later"),
])
def test_blocks_of_our_ip(code, text):
    assert is_ip_block(code, text) is (code >= 500)


@pytest.mark.parametrize("code, text", [
    (550, "5.1.1 The email account that you tried to reach does not exist"),
    (552, "5.2.2 Mailbox full"),
    (550, "5.1.1 <x@y>: Recipient address rejected: blocked"),  # about the recipient, whatever the words
    (554, "5.6.0 Message content rejected"),
    (250, "2.0.0 Ok"),
])
def test_not_blocks(code, text):
    assert not is_ip_block(code, text)
