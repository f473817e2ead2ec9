import pytest

from app.services.errors import ServiceError
from app.services.users import (
    authenticate,
    change_password,
    create_user,
    get_user_by_email,
    list_users,
    update_user,
)
from mailferry.models import ROLE_ADMIN, User


def test_create_user_stores_an_argon2id_hash_and_authenticates(db):
    with db.session() as s:
        user = create_user(s, "  Alice@Example.TEST ", "correct horse", role=ROLE_ADMIN)
        assert user.email == "alice@example.test" and user.is_admin
        assert user.password_hash.startswith("$argon2id$") and "correct horse" not in user.password_hash
    with db.session() as s:
        assert authenticate(s, "ALICE@example.test", "correct horse").id == user.id
        assert authenticate(s, "alice@example.test", "wrong horse") is None
        assert authenticate(s, "nobody@example.test", "correct horse") is None


def test_inactive_users_cannot_sign_in(db):
    with db.session() as s:
        create_user(s, "bob@example.test", "password-1").active = False
    with db.session() as s:
        assert authenticate(s, "bob@example.test", "password-1") is None


@pytest.mark.parametrize("email, password, role, code, field", [
    ("not-an-address", "long-enough", "owner", "invalid", "email"),
    ("a@example.test", "short", "owner", "invalid", "password"),
    ("a@example.test", "long-enough", "root", "invalid", "role"),
])
def test_create_user_validation(db, email, password, role, code, field):
    with db.session() as s, pytest.raises(ServiceError) as err:
        create_user(s, email, password, role=role)
    assert (err.value.code, err.value.field) == (code, field)


def test_duplicate_email_is_refused_case_insensitively(db):
    with db.session() as s:
        create_user(s, "carol@example.test", "password-1")
    with db.session() as s, pytest.raises(ServiceError) as err:
        create_user(s, "CAROL@example.test", "password-2")
    assert err.value.code == "exists" and err.value.http_status == 409
    with db.session() as s:
        assert s.query(User).count() == 1


def test_change_password(db):
    with db.session() as s:
        user = create_user(s, "dave@example.test", "password-1")
        with pytest.raises(ServiceError) as err:
            change_password(s, user, "not-it", "password-2")
        assert err.value.field == "old_password"
        change_password(s, user, "password-1", "password-2")
    with db.session() as s:
        assert authenticate(s, "dave@example.test", "password-2") is not None
        assert get_user_by_email(s, "Dave@Example.test").id == user.id
        with pytest.raises(ServiceError) as err:
            get_user_by_email(s, "eve@example.test")
        assert err.value.code == "not_found"


def test_admins_manage_users_but_keep_one_admin(db, owner, admin):
    with db.session() as s:
        with pytest.raises(ServiceError) as err:
            list_users(s, owner)
        assert err.value.code == "forbidden"
        assert [u.email for u in list_users(s, admin)] == ["admin@people.test", "owner@people.test"]
        me = s.get(User, admin.id)
        with pytest.raises(ServiceError) as err:
            update_user(s, me, admin, role="owner")
        assert "last active admin" in err.value.message
        update_user(s, s.get(User, owner.id), admin, role=ROLE_ADMIN)
        update_user(s, me, admin, active=False)
        assert not me.active and s.get(User, owner.id).is_admin


def test_production_hasher_is_argon2id_with_owasp_minimum_cost():
    from argon2 import Type

    from app.services.users import make_hasher

    hasher = make_hasher()
    assert hasher.type is Type.ID
    assert hasher.time_cost >= 2 and hasher.memory_cost >= 19 * 1024  # OWASP: m >= 19 MiB, t >= 2
