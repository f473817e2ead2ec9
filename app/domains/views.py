from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import login_required

from app.extensions import actor, get_db, get_settings
from app.services import deletion, dkim_access, dkim_keys, domain_policy, domains, quarantine, users, verification
from app.services.errors import ServiceError
from app.web import apply_error
from mailferry.models import User

from . import bp
from .forms import DeleteDomainForm, DkimForm, DomainForm, PolicyForm, VerifyForm

TAKEN = ("Another account verified this domain first, so it cannot be verified here; delete this claim, or ask the "
         "server's admin if the domain is yours.")


@bp.get("/domains")  # where the add form posts: a reload or a typed URL gets the page, not 405
@bp.get("/")
@login_required
def index():
    return _index(DomainForm())


def _index(form: DomainForm, status: int = 200):
    with get_db().session() as s:
        found = domains.list_domains(s, actor())
        return render_template("domains/index.html", domains=found, taken=domains.taken_ids(s, found),
                               form=form), status


@bp.post("/domains")
@login_required
def add():
    form = DomainForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as s:
                owner = s.get(User, actor().id)
                if actor().is_admin and form.owner.data:
                    owner = users.get_user_by_email(s, form.owner.data, "owner")
                domain = domains.add_domain(s, form.name.data, owner, actor())
            flash(f"{domain.name} added. Publish the records below, then press Verify.")
            return redirect(url_for("domains.show", domain_id=domain.id))
        except ServiceError as exc:
            apply_error(form, exc)
    return _index(form, 400)


@bp.get("/domains/<int:domain_id>")
@login_required
def show(domain_id: int):
    return _show(domain_id)


def _show(domain_id: int, policy_form: PolicyForm | None = None, status: int = 200):
    settings = get_settings()
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        policy = domain_policy.effective_policy(domain, settings)
        if policy_form is None:
            policy_form = PolicyForm(formdata=None, data={
                name: value.stored if value.stored is not None else "" for name, value in policy.items()})
            policy_form.spam_threshold.data = "" if domain.spam_threshold is None else f"{domain.spam_threshold:g}"
        policy_form.with_defaults({name: str(value.default) for name, value in policy.items()})
        return render_template(
            "domains/show.html", domain=domain, records=verification.expected_records(domain, settings),
            report=verification.stored_report(domain), keys=dkim_access.list_keys(s, domain),
            taken=domains.taken_elsewhere(s, domain), taken_text=TAKEN,
            verify_form=VerifyForm(), dkim_form=DkimForm(), txt_record=dkim_keys.txt_record,
            policy=policy, policy_form=policy_form, spam_filter=bool(settings.RSPAMD_URL),
            quarantined=quarantine.count_quarantine(s, domain)), status


@bp.post("/domains/<int:domain_id>/options")
@login_required
def options(domain_id: int):
    """The inbound policy form (the URL of the From-rewrite checkbox it replaced)."""
    with get_db().session() as s:
        defaults = domain_policy.effective_policy(domains.get_domain(s, domain_id, actor()), get_settings())
    form = PolicyForm().with_defaults({name: str(value.default) for name, value in defaults.items()})
    if not form.validate_on_submit():
        return _show(domain_id, form, 400)
    try:
        with get_db().session() as s:
            domain = domains.get_domain(s, domain_id, actor())
            domain_policy.set_policy(s, domain, actor(), **{name: getattr(form, name).data
                                                            for name in domain_policy.FIELDS})
    except ServiceError as exc:
        apply_error(form, exc)
        return _show(domain_id, form, 400)
    flash("Inbound policy saved.")
    return redirect(url_for("domains.show", domain_id=domain_id, _anchor="policy"))


@bp.post("/domains/<int:domain_id>/verify")
@login_required
def verify(domain_id: int):
    form = VerifyForm()
    if not form.validate_on_submit():
        abort(400)
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        report = verification.verify_domain(s, domain, get_settings(), force=form.force.data, actor=actor())
    if report.taken_elsewhere:
        flash(TAKEN)
    else:
        flash("All required records pass: mail for this domain is accepted." if report.passed else
              "Some records do not pass yet; see why below. DNS changes can take a while to appear.")
    return redirect(url_for("domains.show", domain_id=domain_id, _anchor="verification"))


@bp.post("/domains/<int:domain_id>/dkim")
@login_required
def generate_key(domain_id: int):
    form = DkimForm()
    if not form.validate_on_submit():
        abort(400)
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        key = dkim_keys.generate_key(s, domain, get_settings().SECRET_KEY, form.algorithm.data, actor=actor())
        flash(f"New DKIM key {key.selector} created." + ("" if key.active else
              " Publish its record, then switch to it; the current key keeps signing until then."))
    return redirect(url_for("domains.show", domain_id=domain_id, _anchor="dkim"))


@bp.post("/domains/<int:domain_id>/dkim/<int:key_id>/activate")
@login_required
def activate_key(domain_id: int, key_id: int):
    with get_db().session() as s:
        key = dkim_access.get_key(s, key_id, actor(), domain_id)
        dkim_keys.activate_key(s, key, actor())
        flash(f"DKIM key {key.selector} now signs this domain's mail.")
    return redirect(url_for("domains.show", domain_id=domain_id, _anchor="dkim"))


@bp.get("/domains/<int:domain_id>/delete")
@login_required
def confirm_delete(domain_id: int):
    return _confirm_delete(domain_id, DeleteDomainForm())


def _confirm_delete(domain_id: int, form: DeleteDomainForm, status: int = 200):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        impact = deletion.domain_deletion(s, domain)
        return render_template("domains/delete.html", domain=domain, impact=impact, form=form), status


@bp.post("/domains/<int:domain_id>/delete")
@login_required
def delete(domain_id: int):
    form = DeleteDomainForm()
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, actor())
        name = domain.name
        if not form.validate_on_submit() or (form.confirm_name.data or "").strip().lower().rstrip(".") != name:
            form.confirm_name.errors = [f"type {name} to delete it"]
            return _confirm_delete(domain_id, form, 400)
        domains.delete_domain(s, domain, actor())
    flash(f"{name} deleted.")
    return redirect(url_for("domains.index"))
