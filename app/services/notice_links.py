"""The dashboard pages our notices link to, as absolute URLs under PUBLIC_URL (the worker builds them, outside
any request, so the paths are spelled here; tests check each against the app's routes)."""

from __future__ import annotations

from mailferry.settings import Settings


def domain_page(settings: Settings, domain_id: int) -> str:
    return f"{settings.public_url}/domains/{domain_id}"


def dkim_section(settings: Settings, domain_id: int) -> str:
    return f"{domain_page(settings, domain_id)}#dkim"


def quarantine_page(settings: Settings, domain_id: int) -> str:
    return f"{domain_page(settings, domain_id)}/quarantine"


def notification_settings(settings: Settings) -> str:
    """Where an owner turns a kind of notice off."""
    return f"{settings.public_url}/account#notifications"
