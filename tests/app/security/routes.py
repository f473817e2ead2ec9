"""What the route walks share: URLs filled from a table of ids, and request bodies that would act."""

from itertools import product

from flask import Flask

# What a request carries so that, were the check missing, it would act (not fail validation first).
FORMS = {
    "domains.add": {"name": "walk-new.test"},
    "domains.generate_key": {"algorithm": "ed25519"},
    "domains.verify": {"force": "y"},
    "domains.options": {"dmarc_reject_policy": "reject", "dmarc_quarantine_policy": "reject",
                        "spam_action": "reject", "spam_threshold": "1"},
    "aliases.create": {"address": "walk-new", "destinations": "walk@walk.test"},
    "aliases.edit": {"destinations": "walk@walk.test", "note": "walked", "enabled": "y"},
    "auth.create_token": {"token-name": "walk"},
    "auth.login_two_factor": {"code": "123456"},
    "auth.two_factor_setup": {"code": "123456"},
    "auth.two_factor_recovery_codes": {"tfr-code": "123456"},
    "auth.two_factor_disable": {"tfd-password": "other-password", "tfd-code": "123456"},
    "admin.create_user": {"email": "walk@people.test", "password": "walk-password", "role": "admin"},
    "admin.update_user": {"role": "admin", "active": "0"},
}
JSON = {
    "api.add_domain": {"name": "walk-api.test"},
    "api.update_domain": {"spam_action": "reject", "spam_threshold": 1.0},
    "api.verify_domain": {"force": True},
    "api.generate_key": {"algorithm": "ed25519"},
    "api.add_alias": {"local_part": "walk-new", "destinations": ["walk@walk.test"]},
    "api.update_alias": {"destinations": ["walk@walk.test"], "enabled": False, "note": "walked"},
    "api.create_token": {"name": "walk", "expires_in_days": 30},
    "api.create_user": {"email": "walk-api@people.test", "password": "walk-password", "role": "admin"},
    "api.update_user": {"role": "admin", "active": False},
}


class UncoveredRoute(AssertionError):
    """A route the walks cannot fill or classify: say in the tests who may use it."""


def filled_urls(app: Flask, rule, candidates: dict[str, list]) -> list[tuple[dict, str]]:
    """(arguments, URL) for every combination of candidate ids; call inside a request context."""
    unknown = sorted(set(rule.arguments) - set(candidates))
    if unknown:
        raise UncoveredRoute(f"{rule.rule}: no ids for {', '.join(unknown)}; add them to OwnerWorld.url_args")
    names = sorted(rule.arguments)
    combos = [dict(zip(names, values, strict=True)) for values in product(*(candidates[n] for n in names))]
    return [(args, app.url_for(rule.endpoint, **args)) for args in combos]
