"""Normalising and validating domain names (IDNA) and mail addresses typed by users."""

from __future__ import annotations

import re

from .control_chars import refuse_control_characters
from .errors import INVALID, ServiceError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# RFC 5322 dot-atom: what a user can reasonably type as a local part (no quoted strings)
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254


def normalise_domain(name: str, field: str = "domain") -> str:
    """Lower-case ASCII (IDNA/punycode) form of a domain name; raises ServiceError(invalid)."""
    raw = refuse_control_characters((name or "").strip().rstrip("."), field, "a domain name")
    if not raw:
        raise ServiceError(INVALID, "a domain name is required", field)
    try:
        ascii_name = raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ServiceError(INVALID, f"{raw!r} is not a valid domain name", field) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ServiceError(INVALID, f"{raw!r} is not a valid domain name (like example.com)", field)
    if labels[-1].isdigit():
        raise ServiceError(INVALID, f"{raw!r} is an address, not a domain name", field)
    return ascii_name


def split_address(address: str, field: str = "address") -> tuple[str, str]:
    """(local part as typed, normalised domain); raises ServiceError(invalid)."""
    raw = refuse_control_characters((address or "").strip(), field, "a mail address")
    local, sep, domain = raw.rpartition("@")
    if not sep or not local:
        raise ServiceError(INVALID, f"{raw!r} is not a mail address (like name@example.com)", field)
    return local, normalise_domain(domain, field)


def normalise_destination(address: str, field: str = "destinations") -> str:
    """A forwarding target: local part kept as typed (it is the remote server's to interpret), domain normalised."""
    local, domain = split_address(address, field)
    if len(local) > MAX_LOCAL_PART or not _LOCAL.match(local):
        raise ServiceError(INVALID, f"{address.strip()!r} has an invalid local part", field)
    result = f"{local}@{domain}"
    if len(result) > MAX_ADDRESS:
        raise ServiceError(INVALID, f"{address.strip()!r} is longer than {MAX_ADDRESS} characters", field)
    return result


def validate_alias_local_part(local: str, field: str = "address") -> str:
    """Alias local parts are stored lower-case; '+' is reserved for sub-addressing (alias+tag@ reaches alias@)."""
    value = local.strip().lower()
    if len(value) > MAX_LOCAL_PART:
        raise ServiceError(INVALID, f"the local part may have at most {MAX_LOCAL_PART} characters", field)
    if "+" in value:
        raise ServiceError(INVALID, "'+' is reserved for sub-addressing (alias+tag@ reaches alias@)", field)
    if not _LOCAL.match(value):
        raise ServiceError(INVALID, f"{local!r} is not a valid local part", field)
    return value
