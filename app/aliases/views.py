from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required

from app.extensions import actor, get_db, get_settings
from app.services import aliases, deletion, domains, mailboxes
from app.services.errors import ServiceError
from app.web import apply_error

from . import bp
from .forms import AliasEditForm, AliasForm


@bp.get("/domains/<int:domain_id>/aliases")
@login_required
def index(domain_id: int):
    return _index(domain_id, AliasForm())


def _index(domain_id: int, form: AliasForm, status: int = 200):
    search = request.args.get("q", "").strip()
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        rows = aliases.list_aliases(s, actor(), domain=domain, search=search or None)
        return render_template("aliases/index.html", domain=domain, aliases=rows, form=form, q=search,
                               pending=_unconfirmed(s, domain.owner_id, rows)), status


def _unconfirmed(s, owner_id: int, rows) -> dict[str, str]:
    """{lower-case destination: "waiting for confirmation" | "suspended"} for the destinations that receive
    nothing now (none when REQUIRE_VERIFIED_DESTINATIONS is off)."""
    if not get_settings().REQUIRE_VERIFIED_DESTINATIONS:
        return {}
    named = {d.lower() for alias in rows for d in alias.destinations}
    boxes = mailboxes.statuses(s, owner_id, named)
    labels = {"pending": "waiting for confirmation", "suspended": "suspended"}
    result = {}
    for address in named:
        state = mailboxes.status(boxes[address]) if address in boxes else "pending"
        if state in labels:
            result[address] = labels[state]
    return result


@bp.post("/domains/<int:domain_id>/aliases")
@login_required
def create(domain_id: int):
    form = AliasForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                domain = domains.get_domain(s, domain_id, actor())
                alias = aliases.add_alias(s, f"{form.address.data.strip()}@{domain.name}", form.destinations.data,
                                          actor(), note=form.note.data or "", enabled=form.enabled.data,
                                          settings=get_settings())
                flash(f"{alias.address} created.")
            return redirect(url_for("aliases.index", domain_id=domain_id))
        except ServiceError as exc:
            apply_error(form, exc)
    return _index(domain_id, form, 400)


@bp.route("/aliases/<int:alias_id>/edit", methods=["GET", "POST"])
@login_required
def edit(alias_id: int):
    with get_db().session() as s:
        alias = aliases.get_alias(s, alias_id, actor())
        form = AliasEditForm(obj=None if request.method == "POST" else _EditData(alias))
        if form.validate_on_submit():
            try:
                with s.begin_nested():
                    aliases.update_alias(s, alias, actor(), destinations=form.destinations.data,
                                         note=form.note.data or "", enabled=form.enabled.data,
                                         settings=get_settings())
                flash(f"{alias.address} saved.")
                return redirect(url_for("aliases.index", domain_id=alias.domain_id))
            except ServiceError as exc:
                apply_error(form, exc)
        status = 400 if request.method == "POST" else 200
        return render_template("aliases/edit.html", alias=alias, form=form,
                               pending=_unconfirmed(s, alias.domain.owner_id, [alias])), status


class _EditData:
    """The alias as the edit form's initial data: destinations one per line."""

    def __init__(self, alias):
        self.destinations = "\n".join(alias.destinations)
        self.note = alias.note
        self.enabled = alias.enabled


@bp.post("/aliases/<int:alias_id>/toggle")
@login_required
def toggle(alias_id: int):
    with get_db().session() as s:
        alias = aliases.get_alias(s, alias_id, actor())
        aliases.update_alias(s, alias, actor(), enabled=not alias.enabled)
        flash(f"{alias.address} {'enabled' if alias.enabled else 'disabled'}.")
        return redirect(url_for("aliases.index", domain_id=alias.domain_id))


@bp.get("/aliases/<int:alias_id>/delete")
@login_required
def confirm_delete(alias_id: int):
    with get_db().session() as s:
        alias = aliases.get_alias(s, alias_id, actor())
        return render_template("aliases/delete.html", alias=alias, impact=deletion.alias_deletion(s, alias))


@bp.post("/aliases/<int:alias_id>/delete")
@login_required
def delete(alias_id: int):
    with get_db().session() as s:
        alias = aliases.get_alias(s, alias_id, actor())
        domain_id, address = alias.domain_id, alias.address
        aliases.delete_alias(s, alias, actor())
    flash(f"{address} deleted.")
    return redirect(url_for("aliases.index", domain_id=domain_id))
