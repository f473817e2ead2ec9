"""`python -m smtp --check`: for a container healthcheck, does our SMTP server greet on SMTP_LISTEN?"""

from __future__ import annotations

import smtplib

from mailferry.settings import Settings

TIMEOUT = 5.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def check(settings: Settings, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """Connects, reads the 220 greeting, says QUIT; (ok, one line saying what happened)."""
    host, port = settings.SMTP_LISTEN
    host = WILDCARDS.get(host, host)
    try:
        client = smtplib.SMTP(timeout=timeout)
        code, greeting = client.connect(host, port)
    except (OSError, smtplib.SMTPException) as exc:
        return False, f"no SMTP server answered on {host}:{port}: {exc or type(exc).__name__}"
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
    text = greeting.decode(errors="replace")
    if code != 220:
        return False, f"the SMTP server on {host}:{port} greeted with {code} {text}"
    return True, f"ok: {host}:{port} greeted with 220 {text}"
