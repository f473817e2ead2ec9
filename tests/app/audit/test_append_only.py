"""The database itself refuses to change or remove an audit event (migration 0004's triggers), whoever asks."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError

from app.services import audit
from mailferry.models import AuditEvent


@pytest.fixture
def event_id(db) -> int:
    with db.session() as s:
        return audit.record(s, audit.DOMAIN_ADDED, actor=audit.CLI, owner_id=None, object_type="domain",
                            object_id=1, summary="domain append.test added").id


@pytest.mark.parametrize("statement", [
    lambda i: update(AuditEvent).where(AuditEvent.id == i).values(summary="nothing happened"),
    lambda i: delete(AuditEvent).where(AuditEvent.id == i),
    lambda i: delete(AuditEvent),
], ids=["update", "delete", "delete-all"])
def test_the_database_refuses_to_change_an_event(db, event_id, statement):
    with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
        s.execute(statement(event_id))
    with db.session() as s:
        event = s.get(AuditEvent, event_id)
        assert event.summary == "domain append.test added"
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_an_orm_edit_of_an_event_is_refused_too(db, event_id):
    with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
        s.get(AuditEvent, event_id).ip = "203.0.113.9"
    with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
        s.delete(s.get(AuditEvent, event_id))
    with db.session() as s:
        assert s.get(AuditEvent, event_id).ip == ""
