"""Every reply the inbound server chooses itself, as named constants (RFC 5321 code + RFC 3463 enhanced code)."""

from __future__ import annotations

import re

OK_SENDER = "250 2.1.0 Ok"
OK_RECIPIENT = "250 2.1.5 Ok"
QUEUED = "250 2.0.0 Ok: queued as {id}"

LINE_TOO_LONG = "500 5.5.6 Line too long"
UNKNOWN_COMMAND = "500 5.5.2 Command not recognized"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
CONTROL_CHARACTER = "501 5.5.2 Control characters are not allowed in commands"
SOURCE_ROUTE = "550 5.7.1 Source routes are not accepted: relay access denied"
MALFORMED_ADDRESS = "553 5.1.3 Malformed address"
LOCAL_PART_TOO_LONG = "553 5.1.3 Local part longer than 64 octets"
UNKNOWN_RECIPIENT = "550 5.1.1 No such recipient here"
# The alias exists but none of its destinations confirmed (or all are suspended); which ones is not said.
UNCONFIRMED_DESTINATION = "550 5.1.1 Recipient address is not active: its destination is not confirmed"
BAD_SRS_ADDRESS = "550 5.1.1 Invalid or expired SRS address"
RELAY_DENIED = "550 5.7.1 Relay access denied"
BARE_LINE_ENDING = "550 5.6.11 Message contains bare CR or bare LF, use CRLF line endings"
NUL_IN_DATA = "554 5.6.0 Message contains NUL bytes"
MAIL_LOOP = "554 5.4.6 Too many Received headers: mail loop"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please try again later"
TOO_MANY_ERRORS = "421 4.7.0 Too many refused recipients, closing connection"
COMMAND_TIMEOUT = "421 4.4.2 {host} Command line not completed in time, closing connection"
DATA_TIMEOUT = "421 4.4.2 {host} Message data not completed in time, closing connection"
IDLE_TIMEOUT = "421 4.4.2 {host} Idle timeout, closing connection"
TOO_MANY_CONNECTIONS = "421 4.7.0 {host} Too many connections from your address, try again later"
SHUTTING_DOWN = "421 4.3.2 {host} Service shutting down"

# aiosmtpd's own replies carry no enhanced status code; these are the ones whose text we replace outright.
REWRITES = {
    "500 Command line too long": LINE_TOO_LONG,
    "553 5.1.3 Error: malformed address": MALFORMED_ADDRESS,
    "500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG,
    "552 Error: Too much mail data": MESSAGE_TOO_BIG,
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
}
# For the rest an enhanced code by reply code is inserted (RFC 2034 wants one on every reply once advertised).
ENHANCED_BY_CODE = {
    "211": "2.0.0", "214": "2.0.0", "220": "2.0.0", "221": "2.0.0", "235": "2.7.0", "250": "2.0.0",
    "252": "2.5.0", "354": "", "421": "4.4.2", "451": "4.3.0", "454": "4.7.0", "500": "5.5.2",
    "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4", "530": "5.7.0", "538": "5.7.11",
    "550": "5.0.0", "552": "5.3.4", "553": "5.1.3", "554": "5.5.0", "555": "5.5.4",
}
# aiosmtpd quotes an unknown command back: NUL and control bytes, and over 512 octets for a long one (RFC 5321
# 4.5.3.1.5); the client knows what it sent.
_ECHOED_COMMAND = re.compile(r'500 Error: command ".*" not recognized', re.DOTALL)
_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


def with_enhanced_code(reply: str) -> str:
    """The reply with an RFC 3463 enhanced status code, inserting one when aiosmtpd left it out."""
    if reply in REWRITES:
        return REWRITES[reply]
    if _ECHOED_COMMAND.fullmatch(reply):
        return UNKNOWN_COMMAND
    if len(reply) < 4 or _HAS_ENHANCED.match(reply):
        return reply
    enhanced = ENHANCED_BY_CODE.get(reply[:3])
    if not enhanced:
        return reply
    return f"{reply[:4]}{enhanced} {reply[4:]}".rstrip()

# Inbound decisions (smtp/inbound), at the end of DATA or at MAIL/RCPT for rate limits.
DMARC_REJECTED = "550 5.7.1 Message refused: it fails the DMARC policy (p=reject) of {domain}"
AUTH_REJECTED = "550 5.7.1 Message refused: it fails the sender's authentication ({why})"
AUTH_TEMPORARY = "451 4.7.0 Could not check the sender's authentication (DNS did not answer), try again later"
SPAM_REJECTED = "550 5.7.1 Message refused as spam"
SPAM_DEFERRED = "451 4.7.1 Message deferred by the spam filter, try again later"
FILTER_UNAVAILABLE = "451 4.7.1 Spam filter unavailable, try again later"
RATE_LIMITED_SENDER = "450 4.7.1 Too many messages from your address, try again later"
RATE_LIMITED_RECIPIENT = "450 4.7.1 Too many messages for this recipient, try again later"
HARVESTING = "421 4.7.0 Too many refused recipients from your address, closing connection"
