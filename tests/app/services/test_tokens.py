from datetime import timedelta

import pytest

from app.services.errors import ServiceError
from app.services.tokens import TokenRefused, allows, authenticate_token, create_token, list_tokens, revoke_token
from mailferry.models import ApiToken, User, utcnow


def _refused(s, secret: str) -> str:
    with pytest.raises(TokenRefused) as err:
        authenticate_token(s, secret)
    return err.value.reason


def test_token_round_trip_stores_only_a_hash(db, owner):
    with db.session() as s:
        token, secret = create_token(s, s.get(User, owner.id), "ci")
        assert secret.startswith("mf_") and secret not in token.token_hash and token.prefix == secret[:10]
        assert token.expires_at is None and token.read_only is False
    with db.session() as s:
        assert authenticate_token(s, secret).user.id == owner.id
        assert s.get(ApiToken, token.id).last_used_at is not None
        assert _refused(s, secret[:-1] + "x") == "unknown"
        assert _refused(s, "") == "unknown"
        s.get(User, owner.id).active = False
        assert _refused(s, secret) == "unknown"


def test_an_expired_token_is_refused_as_expired(db, owner):
    with db.session() as s:
        token, secret = create_token(s, s.get(User, owner.id), "ci", expires_in_days=30)
        assert timedelta(days=29, hours=23) < token.expires_at - utcnow() <= timedelta(days=30)
    with db.session() as s:
        assert authenticate_token(s, secret).id == token.id
        s.get(ApiToken, token.id).expires_at = utcnow() - timedelta(seconds=1)
    with db.session() as s:
        assert _refused(s, secret) == "expired"


@pytest.mark.parametrize("days", [0, -1, 366, True, "30", 1.5])
def test_expiry_outside_1_to_365_days_is_refused(db, owner, days):
    with db.session() as s, pytest.raises(ServiceError) as err:
        create_token(s, s.get(User, owner.id), "ci", expires_in_days=days)
    assert err.value.field == "expires_in_days"


def test_a_token_may_not_outlive_the_token_that_makes_it(db, owner):
    limit = utcnow() + timedelta(days=30)
    with db.session() as s:
        user = s.get(User, owner.id)
        for days in (None, 31):
            with pytest.raises(ServiceError, match="no later"):
                create_token(s, user, "ci", expires_in_days=days, not_after=limit)
        assert create_token(s, user, "ci", expires_in_days=29, not_after=limit)[0].expires_at < limit


def test_a_read_only_token_allows_only_get_and_head(db, owner):
    with db.session() as s:
        read_only, _ = create_token(s, s.get(User, owner.id), "ro", read_only=True)
        full, _ = create_token(s, s.get(User, owner.id), "rw")
        assert [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") if allows(read_only, m)] == \
            ["GET", "HEAD"]
        assert all(allows(full, m) for m in ("GET", "POST", "DELETE"))


def test_owners_revoke_only_their_tokens(db, owner, other_owner, admin):
    with db.session() as s:
        mine, _ = create_token(s, s.get(User, owner.id))
        theirs, _ = create_token(s, s.get(User, other_owner.id))
    with db.session() as s:
        with pytest.raises(ServiceError) as err:
            revoke_token(s, theirs.id, owner)
        assert err.value.code == "not_found"
        revoke_token(s, mine.id, owner)
        revoke_token(s, theirs.id, admin)
        assert list_tokens(s, s.get(User, owner.id)) == [] and list_tokens(s, s.get(User, other_owner.id)) == []
