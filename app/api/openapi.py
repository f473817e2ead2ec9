"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json (tests compare it with the routes)."""

from __future__ import annotations

from typing import Any

from mailferry.models.notification import NOTIFICATION_KINDS

ERROR = {"$ref": "#/components/responses/Error"}


def _param(name: str, kind: str = "integer", where: str = "path") -> dict:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


def _op(summary: str, params: tuple = (), body: dict | None = None, ok: str = "200", tag: str = "") -> dict:
    op: dict[str, Any] = {"summary": summary, "tags": [tag] if tag else [], "parameters": list(params),
                          "responses": {ok: {"description": "OK" if ok != "204" else "Deleted"},
                                        "400": ERROR, "401": ERROR, "404": ERROR}}
    if ok != "204":
        op["responses"][ok]["content"] = {"application/json": {"schema": {"type": "object"}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _obj(required: tuple = (), **props: dict) -> dict:
    return {"type": "object", "required": list(required), "properties": props}


STR, BOOL = {"type": "string"}, {"type": "boolean"}
LIST = {"type": "array", "items": {"type": "string", "format": "email"}}
DOMAIN, ALIAS, KEY, MAILBOX = _param("domain_id"), _param("alias_id"), _param("key_id"), _param("mailbox_id")
MESSAGE = _param("message_id", "string")


def _choice(*values: str) -> dict:
    return {"type": ["string", "null"], "enum": [*values, None]}


POLICY = _obj(
    rewrite_from_for_dmarc_reject={**BOOL, "description": "true = dmarc_reject_policy rewrite"},
    dmarc_reject_policy=_choice("reject", "rewrite", "quarantine"),
    dmarc_quarantine_policy=_choice("quarantine", "reject", "forward"),
    spam_action=_choice("forward", "quarantine", "reject"),
    spam_threshold={"type": ["number", "null"], "minimum": 0, "maximum": 1000,
                    "description": "null = rspamd's own actions"},
)


NOTICES = {**_obj(**dict.fromkeys(NOTIFICATION_KINDS, BOOL)), "additionalProperties": False}


def paths() -> dict:
    return {
        "/domains": {
            "get": _op("Your domains (admins: all)", tag="domains"),
            "post": _op("Add a domain", body=_obj(("name",), name=STR), ok="201", tag="domains"),
        },
        "/domains/{domain_id}": {
            "get": _op("One domain", (DOMAIN,), tag="domains"),
            "patch": _op("Change the inbound policy (null = the instance default); the response shows stored and "
                         "effective values", (DOMAIN,), POLICY, tag="domains"),
            "delete": _op("Delete a domain and its aliases", (DOMAIN,), ok="204", tag="domains"),
        },
        "/domains/{domain_id}/records": {"get": _op("The DNS records to publish", (DOMAIN,), tag="verification")},
        "/domains/{domain_id}/verification": {"get": _op("The last verification result", (DOMAIN,), tag="verification")},
        "/domains/{domain_id}/verify": {"post": _op(
            "Check the DNS records now (force: admins only)", (DOMAIN,), _obj(force=BOOL), tag="verification")},
        "/domains/{domain_id}/dkim": {
            "get": _op("DKIM keys with their TXT records (never the private key)", (DOMAIN,), tag="dkim"),
            "post": _op("Generate a key (rotation when one is active)", (DOMAIN,),
                        _obj(algorithm={"type": "string", "enum": ["rsa", "ed25519"]}), ok="201", tag="dkim"),
        },
        "/domains/{domain_id}/dkim/{key_id}/activate": {"post": _op("Sign with this key", (DOMAIN, KEY), tag="dkim")},
        "/domains/{domain_id}/aliases": {
            "get": _op("Aliases of a domain", (DOMAIN, _param("q", "string", "query")), tag="aliases"),
            "post": _op("Create an alias (local_part '*' is the catch-all)", (DOMAIN,),
                        _obj(("local_part", "destinations"), local_part=STR, destinations=LIST, note=STR, enabled=BOOL),
                        ok="201", tag="aliases"),
        },
        "/aliases/{alias_id}": {
            "get": _op("One alias", (ALIAS,), tag="aliases"),
            "patch": _op("Change destinations, note or enabled", (ALIAS,),
                         _obj(destinations=LIST, note=STR, enabled=BOOL), tag="aliases"),
            "delete": _op("Delete an alias", (ALIAS,), ok="204", tag="aliases"),
        },
        "/destinations": {"get": _op("Your destinations and whether they are verified (admins: all)",
                                     tag="destinations")},
        "/destinations/{mailbox_id}": {"delete": _op("Remove a destination no alias names", (MAILBOX,), ok="204",
                                                     tag="destinations")},
        "/destinations/{mailbox_id}/resend": {"post": _op(
            "Send a new confirmation link (at most every 10 minutes, 3 a day per address, 20 a day per account)",
            (MAILBOX,), tag="destinations")},
        "/destinations/{mailbox_id}/verify": {"post": _op("Mark verified without a link (admins)", (MAILBOX,),
                                                          tag="destinations")},
        "/destinations/{mailbox_id}/reenable": {"post": _op("Lift a suspension (bounces)", (MAILBOX,),
                                                            tag="destinations")},
        "/domains/{domain_id}/messages": {"get": _op(
            "Message log of a domain, newest first",
            (DOMAIN, _param("q", "string", "query"), _param("limit", "integer", "query")), tag="messages")},
        "/messages/{message_id}": {"get": _op("One message with per-destination state and history", (MESSAGE,),
                                              tag="messages")},
        "/messages/{message_id}/retry": {"post": _op("Retry open deliveries now", (MESSAGE,), tag="messages")},
        "/messages/{message_id}/give-up": {"post": _op("Stop retrying open deliveries", (MESSAGE,), tag="messages")},
        "/domains/{domain_id}/quarantine": {"get": _op("Quarantined messages of a domain, newest first", (DOMAIN,),
                                                       tag="quarantine")},
        "/quarantine/{message_id}/release": {"post": _op("Release a quarantined message: forwarded as usual",
                                                         (MESSAGE,), tag="quarantine")},
        "/quarantine/{message_id}": {"delete": _op("Delete a quarantined message", (MESSAGE,), ok="204",
                                                   tag="quarantine")},
        "/admin/failed": {"get": _op("Crashed delivery jobs and recent bounces (admins)", tag="admin")},
        "/admin/failed/{message_id}/requeue": {"post": _op("Deliver a failed or bounced message again (admins)", (MESSAGE,),
                                                           tag="admin")},
        "/users": {
            "get": _op("Every account (admins)", tag="admin"),
            "post": _op("Create an account (admins)", body=_obj(("email", "password"), email=STR, password=STR,
                                                                  role={"type": "string", "enum": ["owner", "admin"]}),
                        ok="201", tag="admin"),
        },
        "/users/{user_id}": {"patch": _op("Change role or deactivate (admins; never the last admin)", (_param("user_id"),),
                                          _obj(role={"type": "string", "enum": ["owner", "admin"]}, active=BOOL),
                                          tag="admin")},
        "/account/notifications": {
            "get": _op("Your notice switches: {kind: on?} for every kind", tag="account"),
            "put": _op("Turn kinds of notices on or off; kinds left out keep their setting", body=NOTICES,
                       tag="account"),
        },

        "/tokens": {
            "get": _op("Your API tokens (never their secrets)", tag="tokens"),
            "post": _op("Create a token; its secret is in this response only. A token made with an expiring token "
                        "must expire no later", body=_obj(("name",), name=STR, read_only={
                            **BOOL, "description": "GET and HEAD only"}, expires_in_days={
                            "type": ["integer", "null"], "minimum": 1, "maximum": 365,
                            "description": "absent or null: never expires"}), ok="201", tag="tokens"),
        },
        "/tokens/{token_id}": {"delete": _op("Revoke a token (admins: anyone's)", (_param("token_id"),), ok="204",
                                             tag="tokens")},

        "/audit": {"get": _op("The audit log, newest first: your account's and objects' events (admins: all); "
                              "page with before=next_before", (_param("action", "string", "query"),
                                                               _param("before", "integer", "query"),
                                                               _param("limit", "integer", "query")), tag="audit")},
        "/stats": {"get": _op("Last 30 days, queue depth, routes, MX cache and delivery routes/relays (admins)", tag="stats")},
        "/domains/{domain_id}/stats": {"get": _op("Last 30 days of one domain", (DOMAIN,), tag="stats")},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "tags": ["meta"],
                                  "responses": {"200": {"description": "OK"}}}},
    }


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Mailferry API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"token": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "A token from the dashboard's Account page."}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": _obj(
                ("error",), error=_obj(("code", "message"), code=STR, message=STR, field=STR))}}}},
        },
    }
