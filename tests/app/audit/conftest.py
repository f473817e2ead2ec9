"""An owner and an admin, each signed in on the dashboard and holding an API token, a CLI, and one of every object
an audited action acts on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from mailferry.models import AuditEvent, Message, User
from mailferry.models.message import BOUNCED, DONE
from tests.app.cli.conftest import Cli
from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)
from tests.app.web_fixtures import Api, Browser, api_for, seed_message, seed_quarantined

WEB_IP = "127.0.0.1"  # the Flask test client's remote address


@dataclass
class Scene:
    db: object
    owner: Browser
    admin: Browser
    owner_api: Api
    admin_api: Api
    cli: Cli
    owner_id: int
    admin_id: int
    domain_id: int
    alias_id: int
    key_ids: tuple[int, int]  # the active key, then an inactive one
    queued_id: str  # a pending delivery: retry and give up act on it
    bounced_id: str  # its one delivery bounced: requeue acts on it
    held_id: str  # quarantined
    settings: object = None
    owner_user: object = None  # the owner fixture's user (id, email)

    def events(self, action: str | None = None) -> list[AuditEvent]:
        """Every event (of `action`), newest first."""
        with self.db.session() as s:
            query = select(AuditEvent).order_by(AuditEvent.id.desc())
            return list(s.scalars(query.where(AuditEvent.action == action) if action else query))


@pytest.fixture
def scene(db, web_app, owner, admin, web_settings) -> Scene:
    with db.session() as s:
        domain = add_domain(s, "owned.test", s.get(User, owner.id))
        domain.verified = True
        alias = add_alias(s, "hello@owned.test", ["me@dest.test"], note="first note")
        keys = [generate_key(s, domain, web_settings.SECRET_KEY, "ed25519") for _ in range(2)]
        ids = domain.id, alias.id, (keys[0].id, keys[1].id)
    queued = seed_message(db, "AUDITQUEUED00001", ids[0], "hello@owned.test", ("me@dest.test",), alias_id=ids[1])
    bounced = seed_message(db, "AUDITBOUNCED0001", ids[0], "hello@owned.test", ("me@dest.test",), alias_id=ids[1])
    with db.session() as s:
        message = s.get(Message, bounced)
        message.state, message.deliveries[0].state = DONE, BOUNCED
    held = seed_quarantined(db, "AUDITHELD0000001", ids[0])
    return Scene(db, Browser(web_app).login("owner@people.test", "owner-password"),
                 Browser(web_app).login("admin@people.test", "admin-password"), api_for(web_app, db, owner),
                 api_for(web_app, db, admin), Cli(web_app), owner.id, admin.id, ids[0], ids[1], ids[2], queued,
                 bounced, held, web_settings, owner)
