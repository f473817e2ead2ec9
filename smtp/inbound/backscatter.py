"""Whether a DSN may ever be sent for a message, decided when it arrives: only to a sender that proved the
address is theirs, never for automatic mail, mailing lists, spam or quarantined mail. The reason a DSN may
not be sent is stored with the message ("" = it may); settle.py also caps DSNs per sender domain."""

from __future__ import annotations

from smtp.from_rewrite import field_name, field_value, split_message

from .authentication import AuthResults

BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})


def dsn_block(raw: bytes, *, mail_from: str, results: AuthResults | None, spam_flagged: bool,
              quarantined: bool) -> str:
    if not mail_from:
        return "null sender"
    if quarantined:
        return "quarantined"
    if spam_flagged:
        return "flagged as spam"
    automatic = _automatic(raw)
    if automatic:
        return automatic
    if results is None or not _authenticated(mail_from, results):
        return "sender not authenticated"
    return ""


def _automatic(raw: bytes) -> str:
    fields, _ = split_message(raw)
    for field in fields:
        name = field_name(field)
        if name == "auto-submitted" and field_value(field).split(";")[0].strip().lower() != "no":
            return "auto-submitted"
        if name == "precedence" and field_value(field).strip().lower() in BULK_PRECEDENCE:
            return "precedence " + field_value(field).strip().lower()
        if name == "list-id":
            return "mailing list"
    return ""


def _authenticated(mail_from: str, results: AuthResults) -> bool:
    """SPF passed for the envelope sender's own domain, or a DKIM signature of that domain did."""
    domain = mail_from.rpartition("@")[2].lower()
    spf = results.result("spf") == "pass" and results.spf_domain == domain
    return spf or results.dkim_pass_for(domain)
