"""Per-owner notice switches: every kind on until turned off, only known kinds and booleans, each owner their own."""

from __future__ import annotations

import pytest

from app.services.errors import ServiceError
from app.services.notification_prefs import DESCRIPTIONS, preferences, set_preferences, switches
from mailferry.models import User
from mailferry.models.notification import DKIM_ROTATION, DNS_BROKEN, NOTIFICATION_KINDS, QUARANTINE_DIGEST


def test_every_kind_is_on_until_turned_off(db, owner):
    with db.session() as s:
        assert preferences(s, owner.id, owner) == dict.fromkeys(NOTIFICATION_KINDS, True)
        assert set_preferences(s, owner.id, owner, {DNS_BROKEN: False})[DNS_BROKEN] is False
        after = set_preferences(s, owner.id, owner, {QUARANTINE_DIGEST: False})  # the others keep their setting
    assert after == {**dict.fromkeys(NOTIFICATION_KINDS, True), DNS_BROKEN: False, QUARANTINE_DIGEST: False}
    with db.session() as s:
        assert s.get(User, owner.id).notification_prefs[DNS_BROKEN] is False
        assert [(w.kind, w.enabled) for w in switches(s, owner.id, owner)][:3] == [
            (DNS_BROKEN, False), ("destination_suspended", True), (QUARANTINE_DIGEST, False)]


def test_every_kind_has_a_label_and_an_explanation():
    assert list(DESCRIPTIONS) == list(NOTIFICATION_KINDS)
    assert all(label and len(explanation) > 20 for label, explanation in DESCRIPTIONS.values())


@pytest.mark.parametrize("changes, field", [({"newsletter": False}, "newsletter"), ({DKIM_ROTATION: "off"}, DKIM_ROTATION),
                                            ({DKIM_ROTATION: 0}, DKIM_ROTATION)])
def test_unknown_kinds_and_non_booleans_are_refused(db, owner, changes, field):
    with db.session() as s, pytest.raises(ServiceError) as err:
        set_preferences(s, owner.id, owner, changes)
    assert (err.value.code, err.value.field) == ("invalid", field)
    with db.session() as s:
        assert s.get(User, owner.id).notification_prefs is None


def test_an_owner_sees_and_changes_only_their_own_an_admin_any(db, owner, other_owner, admin):
    with db.session() as s:
        for call in (lambda: preferences(s, owner.id, other_owner),
                     lambda: set_preferences(s, owner.id, other_owner, {DNS_BROKEN: False})):
            with pytest.raises(ServiceError) as err:
                call()
            assert err.value.code == "not_found"
        assert set_preferences(s, owner.id, admin, {DNS_BROKEN: False})[DNS_BROKEN] is False
    with db.session() as s:
        assert preferences(s, other_owner.id, other_owner)[DNS_BROKEN] is True
