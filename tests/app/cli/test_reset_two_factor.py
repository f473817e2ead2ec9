"""flask reset-2fa: the operator's way back in for an account that lost its authenticator and recovery codes."""

import pyotp

from app.services import two_factor
from app.services.users import create_user
from mailferry.models import User


def test_reset_2fa_turns_it_off_and_ends_the_sessions(cli, cli_app):
    db, key = cli_app.extensions["mailferry.db"], cli_app.extensions["mailferry.settings"].SECRET_KEY
    with db.session() as s:
        user = create_user(s, "locked@people.test", "locked-password")
        secret = two_factor.begin_enrolment(s, user, key).secret
        two_factor.enable(s, user, key, pyotp.TOTP(secret).now())
        version = user.session_version
    assert cli.json("reset-2fa", "--email", "LOCKED@people.test") == {"email": "locked@people.test",
                                                                      "two_factor_was_on": True}
    with db.session() as s:
        user = s.get(User, user.id)
        assert not two_factor.is_enabled(user) and user.totp_secret_enc is None
        assert two_factor.recovery_codes_left(s, user) == 0 and user.session_version == version + 1
    assert "(it was not on)" in cli("reset-2fa", "--email", "locked@people.test").stdout
    assert cli.json("reset-2fa", "--email", "nobody@people.test", code=1)["error"]["code"] == "not_found"
