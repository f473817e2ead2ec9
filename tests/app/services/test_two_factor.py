"""TOTP and recovery codes at the service layer, on both databases, with the clock passed in."""

import time

import pyotp
import pytest
from sqlalchemy import select

from app.services import two_factor
from app.services.errors import ServiceError
from mailferry.crypto import TOTP, decrypt
from mailferry.models import RecoveryCode, User

KEY = "two-factor-test-secret-key-0123456789abcdef"
NOW = 1_700_000_005.0  # a fixed clock in the past, 5 s into a 30-second step; the live clock is later


def _code(secret: str, steps: int = 0, now: float = NOW) -> str:
    return pyotp.TOTP(secret).at(now + 30 * steps)


def _wrong_now(secret: str) -> str:
    """Six digits that are no valid code of the live clock's steps."""
    valid = {pyotp.TOTP(secret).at(time.time() + 30 * n) for n in range(-2, 3)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)


def _enrolled(db, user_id: int) -> tuple[str, list[str]]:
    """Enrols the user at NOW with the code of the step before (so NOW's own code stays unused)."""
    with db.session() as s:
        user = s.get(User, user_id)
        secret = two_factor.begin_enrolment(s, user, KEY).secret
        codes = two_factor.enable(s, user, KEY, _code(secret, -1), now=NOW)
    return secret, codes


def _check(db, user_id: int, code: str, now: float = NOW):
    with db.session() as s:
        return two_factor.check_second_factor(s, s.get(User, user_id), KEY, code, now=now)


def test_enrolment_keeps_one_encrypted_secret_and_draws_the_qr_code(db, owner):
    with db.session() as s:
        user = s.get(User, owner.id)
        first = two_factor.begin_enrolment(s, user, KEY)
        assert two_factor.begin_enrolment(s, user, KEY).secret == first.secret  # a reload keeps the scanned code
        assert first.secret.encode() not in user.totp_secret_enc
        assert decrypt(KEY, user.totp_secret_enc, TOTP).decode() == first.secret
        with pytest.raises(ValueError):
            decrypt(KEY, user.totp_secret_enc)  # DKIM's key does not open it: a salt of its own
    assert first.uri.startswith("otpauth://totp/Mailferry:owner%40people.test?") and first.secret in first.uri
    assert first.qr_svg.startswith("<svg") and "<path" in first.qr_svg and first.secret not in first.qr_svg
    assert not two_factor.is_enabled(user)


@pytest.mark.parametrize("wrong", ["", "12345", "1234567", "abcdef", "steps+2"])
def test_enrolment_with_a_wrong_code_does_not_enable(db, owner, wrong):
    with db.session() as s:
        user = s.get(User, owner.id)
        secret = two_factor.begin_enrolment(s, user, KEY).secret
        code = _code(secret, 2) if wrong == "steps+2" else wrong
        if code in {_code(secret, n) for n in (-1, 0, 1)}:
            pytest.skip("the step+2 code happens to equal a valid one")
        with pytest.raises(ServiceError) as err:
            two_factor.enable(s, user, KEY, code, now=NOW)
        assert err.value.field == "code"
    with db.session() as s:
        user = s.get(User, owner.id)
        assert not two_factor.is_enabled(user) and two_factor.recovery_codes_left(s, user) == 0


def test_enabling_gives_ten_one_use_recovery_codes_stored_as_keyed_hashes(db, owner):
    _secret, codes = _enrolled(db, owner.id)
    assert len(codes) == len(set(codes)) == 10
    with db.session() as s:
        user = s.get(User, owner.id)
        assert two_factor.is_enabled(user) and user.session_version == 1  # other sessions ended
        stored = list(s.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == owner.id)))
    assert len(stored) == 10 and not any(c.replace("-", "") in h or c in h for c in codes for h in stored)


def test_the_current_step_and_one_either_side_are_accepted_each_once(db, owner):
    secret, _codes = _enrolled(db, owner.id)  # step -1 is used
    assert _check(db, owner.id, _code(secret, -1)) is None, "the enrolment code is spent"
    assert _check(db, owner.id, _code(secret, 2)) is None, "two steps ahead is too far"
    accepted = _check(db, owner.id, _code(secret, 0))
    assert accepted is not None and not accepted.recovery_code_used and accepted.recovery_codes_left == 10
    assert _check(db, owner.id, _code(secret, 0)) is None, "a replayed code is refused"
    assert _check(db, owner.id, _code(secret, 1)) is not None
    later = NOW + 30
    assert _check(db, owner.id, _code(secret, 0, later), later) is None, "the next step's code was used already"
    assert _check(db, owner.id, _code(secret, 1, later), later) is not None, "a later step is fresh"


def test_a_code_raced_by_two_requests_is_accepted_once(db, owner):
    """Both requests loaded the user before either claimed the step: the conditional UPDATE lets one through."""
    secret, _codes = _enrolled(db, owner.id)
    with db.session() as late:
        stale = late.get(User, owner.id)
        assert _check(db, owner.id, _code(secret, 0)) is not None
        assert two_factor.check_second_factor(late, stale, KEY, _code(secret, 0), now=NOW) is None


def test_a_recovery_code_works_once(db, owner):
    _secret, codes = _enrolled(db, owner.id)
    used = _check(db, owner.id, codes[3].upper().replace("-", " "))  # as typed off paper
    assert used is not None and used.recovery_code_used and used.recovery_codes_left == 9
    assert _check(db, owner.id, codes[3]) is None
    assert _check(db, owner.id, "abcd-efgh-jkmn") is None
    assert _check(db, owner.id, codes[4]).recovery_codes_left == 8


def test_new_recovery_codes_need_a_code_and_replace_the_old_ones(db, owner):
    secret, old = _enrolled(db, owner.id)
    with db.session() as s, pytest.raises(ServiceError):
        two_factor.regenerate_recovery_codes(s, s.get(User, owner.id), KEY, _wrong_now(secret))
    with db.session() as s:
        new = two_factor.regenerate_recovery_codes(s, s.get(User, owner.id), KEY, pyotp.TOTP(secret).now())
    assert len(new) == 10 and not set(new) & set(old)
    now = time.time()
    assert _check(db, owner.id, old[0], now) is None and _check(db, owner.id, new[0], now) is not None


def test_switching_off_needs_the_password_and_a_code(db, owner):
    secret, codes = _enrolled(db, owner.id)
    with db.session() as s:
        user = s.get(User, owner.id)
        with pytest.raises(ServiceError) as err:
            two_factor.disable(s, user, KEY, "wrong-password", codes[0])
        assert err.value.field == "password"
        with pytest.raises(ServiceError) as err:
            two_factor.disable(s, user, KEY, "owner-password", _wrong_now(secret))
        assert err.value.field == "code"
    with db.session() as s:
        user = s.get(User, owner.id)
        two_factor.disable(s, user, KEY, "owner-password", codes[0])
    with db.session() as s:
        user = s.get(User, owner.id)
        assert not two_factor.is_enabled(user) and user.totp_secret_enc is None
        assert two_factor.recovery_codes_left(s, user) == 0
        assert two_factor.check_second_factor(s, user, KEY, codes[1]) is None
