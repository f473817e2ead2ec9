"""A notice travels like any mail: the digest queued by the daily job is delivered by the delivery job over SMTP
to the sink of the owner's account address, from the system sender, marked auto-generated."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

from app.services.domains import add_domain
from app.services.quarantine_digest import send_digests
from mailferry.models import utcnow
from mailferry.models.message import DELIVERED
from mailferry.models.notification import QUARANTINE_DIGEST
from smtp.delivery.job import run
from tests.app.services.notices import notices
from tests.app.web_fixtures import seed_quarantined
from tests.smtp.delivery.conftest import ctx, dsettings, env, internet  # noqa: F401  (the loopback internet)
from tests.smtp.delivery.helpers import deliveries


def test_the_digest_reaches_the_owners_mailbox(ctx, internet, db, owner):  # noqa: F811  (the fixtures above)
    internet.mx("people.test", (10, "mx.people.test", "127.0.0.2"))
    sink = internet.sink("127.0.0.2")
    with db.session() as s:
        domain_id = add_domain(s, "owned.test", owner).id
    seed_quarantined(db, "held", domain_id, received_at=utcnow() - timedelta(hours=1))

    assert send_digests(db, ctx.settings) == 1
    [notice] = notices(db, QUARANTINE_DIGEST)
    assert run(ctx, notice.message_id) is None

    [got] = sink.messages
    assert got.mail_from == "postmaster@mx.mailferry.test" and got.rcpt_tos == (owner.email,)
    mime = message_from_bytes(got.data, policy=default_policy)
    assert mime["From"] == "Mailferry <postmaster@mx.mailferry.test>" and mime["To"] == owner.email
    assert mime["X-Mailferry-Notice"] == QUARANTINE_DIGEST and mime["Auto-Submitted"] == "auto-generated"
    assert "Cheap watches" in mime.get_body(("plain",)).get_content()
    assert f"/domains/{domain_id}/quarantine" in mime.get_body(("html",)).get_content()
    assert [d.state for d in deliveries(db, notice.message_id)] == [DELIVERED]
