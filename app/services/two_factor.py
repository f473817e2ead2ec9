"""TOTP two-factor authentication: enrolment, codes checked once each, one-use recovery codes, disabling.

The secret is stored encrypted under a key derived from SECRET_KEY (mailferry.crypto.TOTP). Recovery codes are
stored as HMAC-SHA256 under another derived key rather than Argon2: they are 60 random bits each, so a slow hash
adds nothing against guessing, a keyed hash is worthless to someone holding the database without SECRET_KEY,
and a code is found by its digest with one indexed comparison instead of ten Argon2 verifications per login.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailferry.crypto import RECOVERY_CODES, TOTP, decrypt, encrypt, keyed_digest
from mailferry.models import RecoveryCode, User, utcnow

from . import audit
from .access import SYSTEM, Actor
from .errors import INVALID, ServiceError
from .users import end_sessions, password_matches

ISSUER = "Mailferry"
RECOVERY_CODE_COUNT = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt
_CODE_GROUPS, _GROUP_LENGTH = 3, 4  # 12 characters of a 31-letter alphabet: 59 bits
WRONG_CODE = "the code is wrong or was already used"


@dataclass(frozen=True)
class Enrolment:
    """What the set-up page shows: the secret as text and the otpauth:// URI as an inline SVG QR code."""

    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class SecondFactor:
    """A code that was accepted: by recovery code or not, and how many recovery codes remain."""

    recovery_code_used: bool
    recovery_codes_left: int


def is_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None


def begin_enrolment(session: Session, user: User, secret_key: str) -> Enrolment:
    """A pending secret (kept until enabled, so reloading the page does not invalidate a scanned code)."""
    if is_enabled(user):
        raise ServiceError(INVALID, "two-factor authentication is already on", "code")
    if user.totp_secret_enc is None:
        user.totp_secret_enc = encrypt(secret_key, pyotp.random_base32().encode(), TOTP)
        session.flush()
    secret = _secret(user, secret_key)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(secret, uri, segno.make_qr(uri, error="m").svg_inline(scale=5, light="#fff"))


def enable(session: Session, user: User, secret_key: str, code: str, now: float | None = None,
           ip: str = "") -> list[str]:
    """Turns 2FA on once `code` fits the pending secret; returns the recovery codes to show once. Every
    session of the user ends (the caller starts a new one for this browser)."""
    if is_enabled(user) or user.totp_secret_enc is None:
        raise ServiceError(INVALID, "start the set-up again: no pending two-factor secret", "code")
    if not _accept_totp(session, user, secret_key, code, now):
        raise ServiceError(INVALID, WRONG_CODE, "code")
    user.totp_enabled_at = utcnow()
    end_sessions(session, user)
    audit.record_user_event(session, audit.TWO_FACTOR_ENABLED, user, ip=ip,
                            summary=f"two-factor authentication of {user.email} turned on")
    return _new_recovery_codes(session, user, secret_key)


def check_second_factor(session: Session, user: User, secret_key: str, code: str,
                        now: float | None = None) -> SecondFactor | None:
    """A TOTP code (current step ±1, each step once) or an unused recovery code, else None. A recovery code
    accepted here is spent."""
    if not is_enabled(user):
        return None
    code = (code or "").strip()
    if len(code) == 6 and code.isdigit():
        return SecondFactor(False, recovery_codes_left(session, user)) if _accept_totp(
            session, user, secret_key, code, now) else None
    if _spend_recovery_code(session, user, secret_key, code):
        return SecondFactor(True, recovery_codes_left(session, user))
    return None


def regenerate_recovery_codes(session: Session, user: User, secret_key: str, code: str, ip: str = "") -> list[str]:
    """Ten new recovery codes (the old ones stop working), after a valid code."""
    if check_second_factor(session, user, secret_key, code) is None:
        raise ServiceError(INVALID, WRONG_CODE, "code")
    audit.record_user_event(session, audit.RECOVERY_CODES_REGENERATED, user, ip=ip,
                            summary=f"new recovery codes for {user.email}")
    return _new_recovery_codes(session, user, secret_key)


def disable(session: Session, user: User, secret_key: str, password: str, code: str, ip: str = "") -> None:
    """Turns 2FA off after the account password and a valid code; every session of the user ends."""
    if not is_enabled(user):
        raise ServiceError(INVALID, "two-factor authentication is not on", "code")
    if not password_matches(user, password):
        raise ServiceError(INVALID, "the password is wrong", "password")
    if check_second_factor(session, user, secret_key, code) is None:
        raise ServiceError(INVALID, WRONG_CODE, "code")
    reset(session, user, actor=None, ip=ip)  # None: the user themselves


def reset(session: Session, user: User, actor: Actor | None = SYSTEM, ip: str = "") -> None:
    """Turns 2FA off without a code: the operator's CLI, for a user who lost both the app and the recovery codes.
    Every session of the user ends."""
    user.totp_secret_enc, user.totp_enabled_at = None, None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_sessions(session, user)
    audit.record_user_event(session, audit.TWO_FACTOR_DISABLED, user, actor=actor, ip=ip,
                            summary=f"two-factor authentication of {user.email} turned off")



def recovery_codes_left(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).where(RecoveryCode.user_id == user.id,
                                                     RecoveryCode.used_at.is_(None))) or 0


def _secret(user: User, secret_key: str) -> str:
    return decrypt(secret_key, user.totp_secret_enc, TOTP).decode()


def _accept_totp(session: Session, user: User, secret_key: str, code: str, now: float | None) -> bool:
    """True for the code of the current 30-second step or one either side, if that step is later than the last
    one accepted. The step is claimed with a conditional UPDATE, so two requests racing with one code cannot
    both win."""
    code = (code or "").strip()
    if len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(_secret(user, secret_key))
    current = totp.timecode(time.time() if now is None else now)
    for step in (current - 1, current, current + 1):
        if step > (user.totp_last_step or 0) and secrets.compare_digest(totp.generate_otp(step), code):
            claimed = session.execute(update(User).where(User.id == user.id, User.totp_last_step < step)
                                      .values(totp_last_step=step).execution_options(synchronize_session=False))
            session.refresh(user, ["totp_last_step"])
            return claimed.rowcount == 1
    return False


def _normalise_recovery_code(code: str) -> str:
    return "".join(c for c in (code or "").lower() if c.isalnum())


def _new_recovery_codes(session: Session, user: User, secret_key: str) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(_GROUP_LENGTH))
                      for _ in range(_CODE_GROUPS)) for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(secret_key, c)) for c in codes)
    session.flush()
    return codes


def _recovery_digest(secret_key: str, code: str) -> str:
    return keyed_digest(secret_key, RECOVERY_CODES, _normalise_recovery_code(code))


def _spend_recovery_code(session: Session, user: User, secret_key: str, code: str) -> bool:
    """Marks the code used, once: a conditional UPDATE, so the same code raced twice is accepted once."""
    if len(_normalise_recovery_code(code)) != _CODE_GROUPS * _GROUP_LENGTH:
        return False
    spent = session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _recovery_digest(secret_key, code),
        RecoveryCode.used_at.is_(None)).values(used_at=utcnow()).execution_options(synchronize_session=False))
    return spent.rowcount == 1
