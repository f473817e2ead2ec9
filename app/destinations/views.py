from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm

from app.extensions import actor, get_db, get_settings
from app.services import mailboxes
from app.services.errors import NOT_FOUND, ServiceError
from mailferry.links import EXPIRED, INVALID, LinkError

from . import bp

LINK_ERRORS = {
    EXPIRED: "This link has expired. Ask the person who added this address to send a new one.",
    mailboxes.USED: "This link was already used, or a newer link replaced it. Nothing was changed.",
}
INVALID_LINK = "This link is not valid (it may have been cut or changed). Nothing was changed."


@bp.get("")
@login_required
def index():
    settings = get_settings()
    with get_db().session() as s:
        rows = mailboxes.list_mailboxes(s, actor())
        return render_template("destinations/index.html", mailboxes=rows, status=mailboxes.status,
                               kept=mailboxes.kept(s, [m.owner_id for m in rows]),
                               required=settings.REQUIRE_VERIFIED_DESTINATIONS)


def _act(mailbox_id: int, action: Callable, done: str):
    try:
        with get_db().session() as s:
            mailbox = mailboxes.get_mailbox(s, mailbox_id, actor())
            address = mailbox.address
            action(s, mailbox)
        flash(done.format(address=address))
    except ServiceError as exc:
        if exc.code == NOT_FOUND:
            raise
        flash(exc.message)
    return redirect(url_for("destinations.index"))


@bp.post("/<int:mailbox_id>/resend")
@login_required
def resend(mailbox_id: int):
    return _act(mailbox_id, lambda s, m: mailboxes.resend(s, m, actor(), get_settings()),
                "A new confirmation link was sent to {address}.")


@bp.post("/<int:mailbox_id>/verify")
@login_required
def verify(mailbox_id: int):
    return _act(mailbox_id, lambda s, m: mailboxes.mark_verified(s, m, actor()), "{address} marked verified.")


@bp.post("/<int:mailbox_id>/reenable")
@login_required
def reenable(mailbox_id: int):
    return _act(mailbox_id, lambda s, m: mailboxes.reenable(s, m, actor(), get_settings()), "{address} re-enabled.")


@bp.post("/<int:mailbox_id>/remove")
@login_required
def remove(mailbox_id: int):
    return _act(mailbox_id, lambda s, m: mailboxes.remove(s, m, actor()), "{address} removed.")


# ---- public link pages: GET only shows what would happen (mail scanners fetch links), POST does it ----

@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    return _link_page(token, "confirm", mailboxes.read_confirmation, mailboxes.confirm)


@bp.route("/reenable/<token>", methods=["GET", "POST"])
def reenable_link(token: str):
    return _link_page(token, "reenable", mailboxes.read_reenable, mailboxes.reenable_from_link)


def _link_page(token: str, kind: str, read: Callable, act: Callable):
    form, settings = FlaskForm(), get_settings()
    try:
        with get_db().session() as s:
            if request.method == "POST" and form.validate_on_submit():
                mailbox = act(s, settings, token)
                return render_template("destinations/link.html", kind=kind, done=True, address=mailbox.address)
            target = read(s, settings, token)
            return render_template("destinations/link.html", kind=kind, done=False, form=form,
                                   address=target.mailbox.address, owner=target.owner_email)
    except LinkError as exc:  # 410: a genuine link that is spent; 400: not one of ours
        status = 400 if exc.reason == INVALID else 410
        return render_template("destinations/link.html", kind=kind,
                               error=LINK_ERRORS.get(exc.reason, INVALID_LINK)), status
