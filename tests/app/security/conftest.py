"""Two owners with one of everything each, for the authorisation walk and the leak checks."""

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from app.services.aliases import add_alias
from app.services.dkim_keys import generate_key
from app.services.domains import add_domain
from app.services.tokens import create_token
from mailferry.links import CONFIRM_DESTINATION, REENABLE_DESTINATION, DestinationLink, make_token, suspension_stamp
from mailferry.models import Alias, ApiToken, Delivery, DkimKey, Domain, Mailbox, Message, User, utcnow
from mailferry.settings import Settings
from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)
from tests.app.web_fixtures import seed_message, seed_quarantined
from tests.smtp.delivery.conftest import internet  # noqa: F401  (the loopback DNS zone and MX sinks)


@dataclass(frozen=True)
class OwnerWorld:
    user_id: int
    domain: str
    domain_id: int
    alias_id: int
    alias: str
    destination: str
    note: str
    key_ids: tuple[int, ...]  # the active key first, then an inactive one
    public_key: str
    message_id: str  # queued, its delivery pending: retry and give up would act on it
    held_id: str  # quarantined: release and delete would act on it
    token_id: int
    token_secret: str
    mailbox_id: int  # the destination's Mailbox (add_alias made it): waiting for confirmation, and suspended
    link_tokens: tuple[str, ...]  # genuine links for it: confirm, re-enable

    def url_args(self) -> dict[str, list]:
        """The owner's ids for each URL argument name of the app's routes."""
        return {"domain_id": [self.domain_id], "alias_id": [self.alias_id], "key_id": list(self.key_ids),
                "message_id": [self.message_id, self.held_id], "token_id": [self.token_id], "user_id": [self.user_id],
                "mailbox_id": [self.mailbox_id], "token": list(self.link_tokens)}

    def markers(self) -> dict[str, str]:
        """What no other owner may ever read, by name."""
        return {"domain": self.domain, "alias": self.alias, "destination": self.destination, "note": self.note,
                "public key": self.public_key[:40], "token": self.token_secret}


def build_world(db, user: User, label: str, secret_key: str) -> OwnerWorld:
    domain_name, alias, destination = f"{label}-owned.test", f"{label}-alias", f"{label}-dest@{label}-mailbox.test"
    note = f"{label} private note"
    with db.session() as s:
        owner = s.get(User, user.id)
        domain = add_domain(s, domain_name, owner)
        domain.verified = True
        row = add_alias(s, f"{alias}@{domain_name}", [destination], note=note)
        keys = [generate_key(s, domain, secret_key, "ed25519") for _ in range(2)]
        token, secret = create_token(s, owner, f"{label} token")
        ids = domain.id, row.id, tuple(k.id for k in keys), keys[0].public_txt, token.id
        mailbox = s.scalar(select(Mailbox).where(Mailbox.owner_id == owner.id, Mailbox.address == destination))
        mailbox.confirm_nonce, mailbox.suspended_at, mailbox.suspended_reason = f"{label}-nonce", utcnow(), "walk"
        keyed = Settings({"SECRET_KEY": secret_key})
        links = (make_token(keyed, CONFIRM_DESTINATION, DestinationLink(mailbox.id, mailbox.confirm_nonce)),
                 make_token(keyed, REENABLE_DESTINATION, DestinationLink(mailbox.id, suspension_stamp(mailbox.suspended_at))))
        mailbox_id = mailbox.id
    recipient = f"{alias}@{domain_name}"
    message_id = seed_message(db, f"{label.upper()}MSG1", ids[0], recipient, (destination,), alias_id=ids[1])
    held_id = seed_quarantined(db, f"{label.upper()}HELD1", ids[0], recipient, (destination,))
    return OwnerWorld(user.id, domain_name, ids[0], ids[1], alias, destination, note, ids[2], ids[3], message_id,
                      held_id, ids[4], secret, mailbox_id, links)


@pytest.fixture
def first_world(db, owner, web_settings) -> OwnerWorld:
    return build_world(db, owner, "first", web_settings.SECRET_KEY)


@pytest.fixture
def second_world(db, other_owner, web_settings) -> OwnerWorld:
    return build_world(db, other_owner, "second", web_settings.SECRET_KEY)


def snapshot(db, world: OwnerWorld) -> dict:
    """Every column of every row the owner has, to compare before and after someone else's requests."""
    def rows(s, model, *where):
        return sorted((sorted((c.name, repr(getattr(r, c.key))) for c in model.__mapper__.columns)
                       for r in s.scalars(select(model).where(*where))), key=str)

    with db.session() as s:
        messages = [world.message_id, world.held_id]
        return {"user": rows(s, User, User.id == world.user_id),
                "domain": rows(s, Domain, Domain.id == world.domain_id),
                "aliases": rows(s, Alias, Alias.domain_id == world.domain_id),
                "keys": rows(s, DkimKey, DkimKey.domain_id == world.domain_id),
                "tokens": rows(s, ApiToken, ApiToken.user_id == world.user_id),
                "mailboxes": rows(s, Mailbox, Mailbox.owner_id == world.user_id),
                "messages": rows(s, Message, Message.id.in_(messages)),
                "deliveries": rows(s, Delivery, Delivery.message_id.in_(messages))}
