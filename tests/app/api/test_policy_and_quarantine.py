"""PATCH /api/v1/domains/{id} policy fields, and the quarantine endpoints."""

from __future__ import annotations

import pytest
from rq.job import Job

from mailferry.models import Domain, Message
from mailferry.models.message import QUARANTINED, QUEUED
from mailferry.queue import job_id_for
from tests.app.web_fixtures import seed_quarantined


def _error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    if field:
        assert error["field"] == field, error
    return error


def test_the_domain_shows_stored_and_effective_policy(owner_api, owner_domain):
    domain = owner_api("GET", f"/domains/{owner_domain}", status=200).get_json()["domain"]
    assert (domain["dmarc_reject_policy"], domain["spam_action"], domain["spam_threshold"]) == (None, None, None)
    assert domain["effective_policy"]["dmarc_reject_policy"] == {"value": "reject", "source": "default",
                                                                "default": "reject"}
    assert domain["effective_policy"]["spam_action"]["value"] == "quarantine"


def test_patch_the_policy_and_back_to_the_defaults(owner_api, owner_domain, db):
    body = owner_api("PATCH", f"/domains/{owner_domain}", {
        "dmarc_reject_policy": "quarantine", "dmarc_quarantine_policy": "reject", "spam_action": "forward",
        "spam_threshold": 8}, 200).get_json()["domain"]
    assert (body["dmarc_reject_policy"], body["dmarc_quarantine_policy"], body["spam_action"],
            body["spam_threshold"]) == ("quarantine", "reject", "forward", 8.0)
    assert body["effective_policy"]["spam_action"] == {"value": "forward", "source": "domain", "default": "quarantine"}
    body = owner_api("PATCH", f"/domains/{owner_domain}", {"spam_threshold": None, "spam_action": None},
                     200).get_json()["domain"]
    assert body["spam_threshold"] is None and body["effective_policy"]["spam_action"]["source"] == "default"
    assert body["dmarc_reject_policy"] == "quarantine"  # not sent, not changed
    with db.session() as s:
        assert s.get(Domain, owner_domain).spam_action is None


def test_the_old_rewrite_field_still_works_through_the_policy(owner_api, owner_domain):
    body = owner_api("PATCH", f"/domains/{owner_domain}", {"rewrite_from_for_dmarc_reject": True},
                     200).get_json()["domain"]
    assert body["dmarc_reject_policy"] == "rewrite" and body["rewrite_from_for_dmarc_reject"] is True
    _error(owner_api("PATCH", f"/domains/{owner_domain}", {"rewrite_from_for_dmarc_reject": False,
                                                           "dmarc_reject_policy": "reject"}), 400)


@pytest.mark.parametrize("body,field", [
    ({"dmarc_reject_policy": "forward"}, "dmarc_reject_policy"),
    ({"dmarc_quarantine_policy": 1}, "dmarc_quarantine_policy"),
    ({"spam_action": "drop"}, "spam_action"),
    ({"spam_threshold": "5"}, "spam_threshold"),
    ({"spam_threshold": 2000}, "spam_threshold"),
    ({"spam_threshold": True}, "spam_threshold"),
])
def test_bad_policy_values_name_the_field(owner_api, owner_domain, body, field):
    _error(owner_api("PATCH", f"/domains/{owner_domain}", body), 400, field)


def test_an_empty_patch_is_refused(owner_api, owner_domain):
    assert "at least one" in _error(owner_api("PATCH", f"/domains/{owner_domain}", {}), 400)["message"]


def test_list_release_and_delete_quarantined_mail(owner_api, owner_domain, db, redis_conn):
    seed_quarantined(db, "held1", owner_domain)
    seed_quarantined(db, "held2", owner_domain)
    rows = owner_api("GET", f"/domains/{owner_domain}/quarantine", status=200).get_json()["quarantine"]
    assert {r["id"] for r in rows} == {"held1", "held2"}
    assert rows[0]["subject"] == "Cheap watches" and rows[0]["spam_score"] == 9.5 and rows[0]["filter_reason"]
    assert owner_api("POST", "/quarantine/held1/release", status=200).get_json() == {"released": "held1",
                                                                                     "enqueued": True}
    assert Job.fetch(job_id_for("held1"), connection=redis_conn).get_status() == "queued"
    _error(owner_api("POST", "/quarantine/held1/release"), 400, "message")  # not held any more
    owner_api("DELETE", "/quarantine/held2", status=204)
    with db.session() as s:
        assert s.get(Message, "held1").state == QUEUED and s.get(Message, "held2") is None
    assert owner_api("GET", f"/domains/{owner_domain}/quarantine", status=200).get_json()["quarantine"] == []


def test_another_owner_gets_404_for_my_quarantine(other_api, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    for method, path, body in [("GET", f"/domains/{owner_domain}/quarantine", None),
                               ("POST", "/quarantine/held1/release", None), ("DELETE", "/quarantine/held1", None),
                               ("PATCH", f"/domains/{owner_domain}", {"spam_action": "forward"})]:
        assert _error(other_api(method, path, body), 404)["code"] == "not_found"
    with db.session() as s:
        assert s.get(Message, "held1").state == QUARANTINED and s.get(Domain, owner_domain).spam_action is None


def test_admins_see_every_quarantine(admin_api, owner_domain, db):
    seed_quarantined(db, "held1", owner_domain)
    assert [r["id"] for r in admin_api("GET", f"/domains/{owner_domain}/quarantine",
                                       status=200).get_json()["quarantine"]] == ["held1"]
