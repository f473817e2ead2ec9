from __future__ import annotations

from flask import jsonify, request

from app.extensions import get_db, get_redis, get_rq_queue, get_settings
from app.services import (
    aliases,
    audit,
    dkim_access,
    dkim_keys,
    domain_policy,
    domains,
    mailboxes,
    message_log,
    notification_prefs,
    quarantine,
    stats,
    tokens,
    users,
    verification,
)
from app.services.errors import INVALID, NOT_FOUND, ServiceError
from mailferry.delivery_stats import delivery_stats
from mailferry.models import User

from . import bp
from .auth import api_actor, api_token_expires_at
from .openapi import document

_TYPE_NAMES = {str: "string", bool: "boolean", list: "list", int: "integer"}


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ServiceError(INVALID, "send a JSON object with Content-Type: application/json")
    return data


def _field(data: dict, name: str, kind: type, default=None, required: bool = False):
    if name not in data:
        if required:
            raise ServiceError(INVALID, f"{name} is required", name)
        return default
    if not isinstance(data[name], kind) or (kind is int and isinstance(data[name], bool)):
        raise ServiceError(INVALID, f"{name} must be a {_TYPE_NAMES[kind]}", name)
    return data[name]


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())


# ---- domains ----

def _domain_json(domain) -> dict:
    return domain_policy.domain_json(domain, get_settings())


@bp.get("/domains")
def list_domains():
    with get_db().session() as s:
        return jsonify(domains=[_domain_json(d) for d in domains.list_domains(s, api_actor())])


@bp.post("/domains")
def add_domain():
    name = _field(_body(), "name", str, required=True)
    with get_db().session() as s:
        domain = domains.add_domain(s, name, s.get(User, api_actor().id), api_actor())
        body = _domain_json(domain)
    return jsonify(domain=body), 201


@bp.get("/domains/<int:domain_id>")
def get_domain(domain_id: int):
    with get_db().session() as s:
        return jsonify(domain=_domain_json(domains.get_domain(s, domain_id, api_actor())))


REWRITE_FIELD = "rewrite_from_for_dmarc_reject"


@bp.patch("/domains/<int:domain_id>")
def update_domain(domain_id: int):
    data = _body()
    policy = {name: _policy_field(data, name) for name in domain_policy.FIELDS if name in data}
    if REWRITE_FIELD not in data and not policy:
        raise ServiceError(INVALID, f"send at least one of {REWRITE_FIELD}, {', '.join(domain_policy.FIELDS)}")
    if REWRITE_FIELD in data and "dmarc_reject_policy" in policy:
        raise ServiceError(INVALID, f"send {REWRITE_FIELD} or dmarc_reject_policy, not both", REWRITE_FIELD)
    rewrite = _field(data, REWRITE_FIELD, bool)
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        domain_policy.set_policy(s, domain, api_actor(), **policy)
        if rewrite is not None:
            domains.set_rewrite_for_dmarc_reject(s, domain, rewrite, api_actor())
        return jsonify(domain=_domain_json(domain))


def _policy_field(data: dict, name: str):
    """A policy value from the body: a string (or a number for spam_threshold), null = the instance default."""
    value = data[name]
    if name == "spam_threshold":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ServiceError(INVALID, "spam_threshold must be a number or null", name)
    elif value is not None and not isinstance(value, str):
        raise ServiceError(INVALID, f"{name} must be a string or null", name)
    return value


@bp.delete("/domains/<int:domain_id>")
def delete_domain(domain_id: int):
    with get_db().session() as s:
        domains.delete_domain(s, domains.get_domain(s, domain_id, api_actor()), api_actor())
    return "", 204


@bp.get("/domains/<int:domain_id>/records")
def domain_records(domain_id: int):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        records = verification.expected_records(domain, get_settings())
        return jsonify(records=[{"check": r.check, "type": r.type, "name": r.name, "value": r.value,
                                 "priority": r.priority, "note": r.note} for r in records])


@bp.get("/domains/<int:domain_id>/verification")
def last_verification(domain_id: int):
    with get_db().session() as s:
        report = verification.stored_report(domains.get_domain(s, domain_id, api_actor()))
        return jsonify(verification=report.to_dict() if report else None)


@bp.post("/domains/<int:domain_id>/verify")
def verify_domain(domain_id: int):
    force = _field(request.get_json(silent=True) or {}, "force", bool, default=False)
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        report = verification.verify_domain(s, domain, get_settings(), force=force, actor=api_actor())
        return jsonify(verification=report.to_dict())


# ---- DKIM ----

@bp.get("/domains/<int:domain_id>/dkim")
def list_keys(domain_id: int):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        return jsonify(keys=[dkim_access.key_dict(k, domain.name) for k in dkim_access.list_keys(s, domain)])


@bp.post("/domains/<int:domain_id>/dkim")
def generate_key(domain_id: int):
    algorithm = _field(request.get_json(silent=True) or {}, "algorithm", str, default="rsa")
    if algorithm not in dkim_keys.ALGORITHMS:
        raise ServiceError(INVALID, f"algorithm must be one of {', '.join(dkim_keys.ALGORITHMS)}", "algorithm")
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        key = dkim_keys.generate_key(s, domain, get_settings().SECRET_KEY, algorithm, actor=api_actor())
        return jsonify(key=dkim_access.key_dict(key, domain.name)), 201


@bp.post("/domains/<int:domain_id>/dkim/<int:key_id>/activate")
def activate_key(domain_id: int, key_id: int):
    with get_db().session() as s:
        key = dkim_access.get_key(s, key_id, api_actor(), domain_id)
        dkim_keys.activate_key(s, key, api_actor())
        return jsonify(key=dkim_access.key_dict(key, key.domain.name))


# ---- aliases ----

@bp.get("/domains/<int:domain_id>/aliases")
def list_aliases(domain_id: int):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        rows = aliases.list_aliases(s, api_actor(), domain=domain, search=request.args.get("q") or None)
        return jsonify(aliases=[aliases.alias_dict(a) for a in rows])


@bp.post("/domains/<int:domain_id>/aliases")
def add_alias(domain_id: int):
    data = _body()
    local = _field(data, "local_part", str, required=True)
    targets = _field(data, "destinations", list, required=True)
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        alias = aliases.add_alias(s, f"{local.strip()}@{domain.name}", [str(t) for t in targets], api_actor(),
                                  note=_field(data, "note", str, default=""),
                                  enabled=_field(data, "enabled", bool, default=True), address_field="local_part",
                                  settings=get_settings())
        return jsonify(alias=aliases.alias_dict(alias)), 201


@bp.get("/aliases/<int:alias_id>")
def get_alias(alias_id: int):
    with get_db().session() as s:
        return jsonify(alias=aliases.alias_dict(aliases.get_alias(s, alias_id, api_actor())))


@bp.patch("/aliases/<int:alias_id>")
def update_alias(alias_id: int):
    data = _body()
    targets = _field(data, "destinations", list)
    with get_db().session() as s:
        alias = aliases.update_alias(s, aliases.get_alias(s, alias_id, api_actor()), api_actor(),
                                     destinations=[str(t) for t in targets] if targets is not None else None,
                                     enabled=_field(data, "enabled", bool), note=_field(data, "note", str),
                                     settings=get_settings())
        return jsonify(alias=aliases.alias_dict(alias))


@bp.delete("/aliases/<int:alias_id>")
def delete_alias(alias_id: int):
    with get_db().session() as s:
        aliases.delete_alias(s, aliases.get_alias(s, alias_id, api_actor()), api_actor())
    return "", 204


# ---- destinations ----

@bp.get("/destinations")
def list_destinations():
    with get_db().session() as s:
        return jsonify(destinations=[mailboxes.mailbox_dict(m) for m in mailboxes.list_mailboxes(s, api_actor())])


def _destination(mailbox_id: int, action) -> dict:
    with get_db().session() as s:
        mailbox = action(s, mailboxes.get_mailbox(s, mailbox_id, api_actor()))
        return mailboxes.mailbox_dict(mailbox)


@bp.post("/destinations/<int:mailbox_id>/resend")
def resend_destination(mailbox_id: int):
    return jsonify(destination=_destination(
        mailbox_id, lambda s, m: mailboxes.resend(s, m, api_actor(), get_settings())))


@bp.post("/destinations/<int:mailbox_id>/verify")
def verify_destination(mailbox_id: int):
    return jsonify(destination=_destination(mailbox_id, lambda s, m: mailboxes.mark_verified(s, m, api_actor())))


@bp.post("/destinations/<int:mailbox_id>/reenable")
def reenable_destination(mailbox_id: int):
    return jsonify(destination=_destination(mailbox_id, lambda s, m: mailboxes.reenable(s, m, api_actor(), get_settings())))


@bp.delete("/destinations/<int:mailbox_id>")
def delete_destination(mailbox_id: int):
    with get_db().session() as s:
        mailboxes.remove(s, mailboxes.get_mailbox(s, mailbox_id, api_actor()), api_actor())
    return "", 204


# ---- messages ----

@bp.get("/domains/<int:domain_id>/messages")
def list_messages(domain_id: int):
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 500:
        raise ServiceError(INVALID, "limit must be 1-500", "limit")
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        rows = message_log.list_messages(s, api_actor(), domain.id, request.args.get("q") or None, int(limit))
        visible = message_log.deliveries_of(s, rows, api_actor(), domain.id)
        return jsonify(messages=[message_log.message_dict(m, visible[m.id]) for m in rows])


@bp.get("/messages/<message_id>")
def get_message(message_id: str):
    with get_db().session() as s:
        message = message_log.get_message(s, message_id, api_actor())
        visible = message_log.deliveries(s, message, api_actor())
        history = message_log.attempts(s, [d.id for d in visible])
        body = message_log.message_dict(message, visible)
        body["deliveries"] = [message_log.delivery_dict(d, history[d.id]) for d in visible]
        return jsonify(message=body)


@bp.post("/messages/<message_id>/retry")
def retry_message(message_id: str):
    with get_db().session() as s:
        ids = message_log.retry_now(s, message_log.get_message(s, message_id, api_actor()), api_actor())
    return jsonify(retrying=ids, enqueued=message_log.dispatch_now(get_rq_queue(), message_id))


@bp.post("/messages/<message_id>/give-up")
def give_up_message(message_id: str):
    with get_db().session() as s:
        ids = message_log.give_up(s, message_log.get_message(s, message_id, api_actor()), api_actor())
    return jsonify(gave_up=ids)


@bp.get("/admin/failed")
def failed_messages():
    with get_db().session() as s:
        rows = message_log.failed_messages(s, get_rq_queue(), api_actor())
        bounces = message_log.recent_bounces(s, api_actor())
        return jsonify(failed=[{"message_id": mid, "state": m.state if m else None,
                                "received_at": m.received_at.isoformat() + "Z" if m else None} for mid, m in rows],
                       bounced=[{"message_id": d.message_id, **message_log.delivery_dict(d)} for d in bounces])


@bp.post("/admin/failed/<message_id>/requeue")
def requeue_message(message_id: str):
    with get_db().session() as s:
        reopened = message_log.requeue(s, get_rq_queue(), message_id, api_actor())
    return jsonify(requeued=message_id, reopened=reopened,
                   enqueued=message_log.dispatch_now(get_rq_queue(), message_id))


# ---- quarantine ----

@bp.get("/domains/<int:domain_id>/quarantine")
def list_quarantine(domain_id: int):
    with get_db().session() as s:
        domain = domains.get_domain(s, domain_id, api_actor())
        return jsonify(quarantine=[m.to_dict() for m in quarantine.list_quarantine(s, domain, api_actor())])


@bp.post("/quarantine/<message_id>/release")
def release_quarantined(message_id: str):
    with get_db().session() as s:
        quarantine.release(s, quarantine.get_held(s, message_id, api_actor()), api_actor())
    return jsonify(released=message_id, enqueued=message_log.dispatch_now(get_rq_queue(), message_id))


@bp.delete("/quarantine/<message_id>")
def delete_quarantined(message_id: str):
    with get_db().session() as s:
        quarantine.delete_held(s, quarantine.get_held(s, message_id, api_actor()), api_actor())
    return "", 204


# ---- users (admins) ----

def _user_dict(user: User) -> dict:
    return {"id": user.id, "email": user.email, "role": user.role, "active": user.active,
            "created_at": user.created_at.isoformat() + "Z" if user.created_at else None}


@bp.get("/users")
def list_users():
    with get_db().session() as s:
        return jsonify(users=[_user_dict(u) for u in users.list_users(s, api_actor())])


@bp.post("/users")
def create_user():
    data = _body()
    with get_db().session() as s:
        users.list_users(s, api_actor())  # admins only
        user = users.create_user(s, _field(data, "email", str, required=True), _field(data, "password", str, required=True),
                                 _field(data, "role", str, default="owner"), api_actor())
        mailboxes.verify_own_address(s, user)  # an admin made the account: its address is theirs to vouch for
        return jsonify(user=_user_dict(user)), 201


@bp.patch("/users/<int:user_id>")
def update_user(user_id: int):
    data = _body()
    with get_db().session() as s:
        users.list_users(s, api_actor())  # admins only, before revealing whether the id exists
        user = s.get(User, user_id)
        if user is None:
            raise ServiceError(NOT_FOUND, f"no user #{user_id}", "user")
        users.update_user(s, user, api_actor(), role=_field(data, "role", str), active=_field(data, "active", bool))
        return jsonify(user=_user_dict(user))


# ---- account ----

@bp.get("/account/notifications")
def get_notifications():
    with get_db().session() as s:
        return jsonify(notifications=notification_prefs.preferences(s, api_actor().id, api_actor()))


@bp.put("/account/notifications")
def set_notifications():
    changes = _body()
    with get_db().session() as s:
        return jsonify(notifications=notification_prefs.set_preferences(s, api_actor().id, api_actor(), changes))

# ---- API tokens (the caller's own) ----

@bp.get("/tokens")
def list_tokens():
    with get_db().session() as s:
        return jsonify(tokens=[tokens.token_dict(t) for t in tokens.list_tokens(s, s.get(User, api_actor().id))])


@bp.post("/tokens")
def create_token():
    data = _body()
    with get_db().session() as s:
        token, secret = tokens.create_token(s, s.get(User, api_actor().id), _field(data, "name", str, required=True),
                                            expires_in_days=data.get("expires_in_days"),
                                            read_only=_field(data, "read_only", bool, default=False),
                                            not_after=api_token_expires_at(), actor=api_actor())
        return jsonify(token={**tokens.token_dict(token), "secret": secret}), 201


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    with get_db().session() as s:
        tokens.revoke_token(s, token_id, api_actor())
    return "", 204

# ---- audit log ----

@bp.get("/audit")
def list_audit():
    limit = request.args.get("limit", "50")
    if not limit.isdigit():
        raise ServiceError(INVALID, f"limit must be 1-{audit.MAX_PAGE}", "limit")
    with get_db().session() as s:
        page = audit.list_events(s, api_actor(), action=request.args.get("action") or None,
                                 before=audit.parse_cursor(request.args.get("before")), limit=int(limit))
        return jsonify(events=[audit.event_dict(e) for e in page.events], next_before=page.next_before)


# ---- stats ----

def _stats(domain_id: int | None):
    with get_db().session() as s:
        series = stats.daily_series(s, api_actor(), domain_id)
        admin = api_actor().is_admin
        return jsonify(days=series, totals=stats.totals(series), queue=stats.queue_depth(s, api_actor(), domain_id),
                       mx_cache=stats.mx_cache(get_redis()) if admin else None,
                       delivery=delivery_stats(get_db(), get_redis(), get_settings(), days=30)
                       if admin and domain_id is None else None)


@bp.get("/stats")
def overall_stats():
    return _stats(None)


@bp.get("/domains/<int:domain_id>/stats")
def domain_stats(domain_id: int):
    with get_db().session() as s:
        domains.get_domain(s, domain_id, api_actor())
    return _stats(domain_id)
