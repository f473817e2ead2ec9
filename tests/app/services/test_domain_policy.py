"""app/services/domain_policy: the effective inbound policy of a domain and validated changes."""

from __future__ import annotations

import pytest

from app.services.domain_policy import effective_policy, policy_dict, set_policy
from app.services.domains import add_domain
from app.services.errors import ServiceError
from mailferry.models import Domain


@pytest.fixture
def domain_id(db, owner):
    with db.session() as s:
        return add_domain(s, "policy.test", owner).id


def test_every_field_starts_at_the_instance_default(db, domain_id, app_settings):
    settings = app_settings.replace(DMARC_REJECT_POLICY="rewrite", SPAM_ACTION="forward")
    with db.session() as s:
        policy = policy_dict(s.get(Domain, domain_id), settings)
    assert policy == {
        "dmarc_reject_policy": {"value": "rewrite", "source": "default", "default": "rewrite"},
        "dmarc_quarantine_policy": {"value": "quarantine", "source": "default", "default": "quarantine"},
        "spam_action": {"value": "forward", "source": "default", "default": "forward"},
        "spam_threshold": {"value": None, "source": "default", "default": None},
    }


def test_set_and_reset(db, domain_id, app_settings, owner):
    with db.session() as s:
        set_policy(s, s.get(Domain, domain_id), owner, dmarc_reject_policy="Quarantine", spam_action="reject",
                   spam_threshold="7.5")
    with db.session() as s:
        domain = s.get(Domain, domain_id)
        policy = effective_policy(domain, app_settings)
        assert (domain.dmarc_reject_policy, domain.spam_action, domain.spam_threshold) == ("quarantine", "reject", 7.5)
        assert policy["dmarc_reject_policy"].effective == "quarantine" and not policy["dmarc_reject_policy"].is_default
        assert policy["dmarc_quarantine_policy"].is_default  # untouched
        set_policy(s, domain, dmarc_reject_policy="default", spam_action=None, spam_threshold="")
    with db.session() as s:
        domain = s.get(Domain, domain_id)
        assert (domain.dmarc_reject_policy, domain.spam_action, domain.spam_threshold) == (None, None, None)


@pytest.mark.parametrize("field,value", [
    ("dmarc_reject_policy", "forward"), ("spam_action", "drop"),
    ("spam_threshold", "lots"), ("spam_threshold", -1), ("spam_threshold", 1000.5), ("spam_threshold", "nan"),
    ("spam_threshold", True), ("dmarc_reject_policy", 3), ("spam_action", "rewrite"),
])
def test_a_bad_value_names_its_field_and_nothing_is_stored(db, domain_id, field, value):
    with db.session() as s:
        with pytest.raises(ServiceError) as caught:
            set_policy(s, s.get(Domain, domain_id), **{"dmarc_quarantine_policy": "reject", field: value})
        assert caught.value.field == field and caught.value.code == "invalid"
    with db.session() as s:
        assert s.get(Domain, domain_id).dmarc_quarantine_policy is None


def test_threshold_bounds_are_inclusive(db, domain_id):
    for value in (0, 1000, "1000"):
        with db.session() as s:
            assert set_policy(s, s.get(Domain, domain_id), spam_threshold=value).spam_threshold == float(value)


def test_another_owner_cannot_change_it(db, domain_id, other_owner):
    with db.session() as s:
        with pytest.raises(ServiceError) as caught:
            set_policy(s, s.get(Domain, domain_id), other_owner, spam_action="forward")
        assert caught.value.code == "not_found"


def test_the_old_rewrite_flag_is_the_rewrite_policy(db, domain_id, app_settings):
    with db.session() as s:
        domain = s.get(Domain, domain_id)
        domain.rewrite_from_for_dmarc_reject = True
        assert effective_policy(domain, app_settings)["dmarc_reject_policy"].effective == "rewrite"
        set_policy(s, domain, dmarc_reject_policy="reject")
        assert domain.rewrite_from_for_dmarc_reject is False
