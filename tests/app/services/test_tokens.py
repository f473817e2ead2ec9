import pytest

from app.services.errors import ServiceError
from app.services.tokens import authenticate_token, create_token, list_tokens, revoke_token
from mailferry.models import ApiToken, User


def test_token_round_trip_stores_only_a_hash(db, owner):
    with db.session() as s:
        token, secret = create_token(s, s.get(User, owner.id), "ci")
        assert secret.startswith("mf_") and secret not in token.token_hash and token.prefix == secret[:10]
    with db.session() as s:
        assert authenticate_token(s, secret).id == owner.id
        assert s.get(ApiToken, token.id).last_used_at is not None
        assert authenticate_token(s, secret[:-1] + "x") is None
        assert authenticate_token(s, "") is None
        s.get(User, owner.id).active = False
        assert authenticate_token(s, secret) is None


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
