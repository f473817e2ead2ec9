"""README.md documents every CLI command and the quarantine and policy parts of the API."""

from __future__ import annotations

import os

import click

from app import create_app
from harness.settings import make_settings

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_every_cli_command_is_in_the_readme(tmp_path):
    app = create_app(make_settings(DATABASE_URL=f"sqlite:///{tmp_path}/unused.db"))
    readme = _readme()
    for name, command in app.cli.commands.items():
        if name in ("routes", "run", "shell"):  # Flask's own
            continue
        subcommands = list(command.commands) if isinstance(command, click.Group) else [None]
        for sub in subcommands:
            assert (f"{name} {sub}" if sub else name) in readme, f"README does not document `{name} {sub}`"


def test_the_new_api_endpoints_and_fields_are_in_the_readme():
    readme = _readme()
    for text in ("PATCH /api/v1/domains/{id}", "GET /api/v1/domains/{id}/quarantine",
                 "POST /api/v1/quarantine/{message_id}/release", "DELETE /api/v1/quarantine/{message_id}",
                 "dmarc_reject_policy", "dmarc_quarantine_policy", "spam_action", "spam_threshold", "effective_policy",
                 "domains policy NAME [--dmarc-reject reject\\|rewrite\\|quarantine\\|default]"):
        assert text in readme, text


def test_every_notification_kind_and_its_switch_are_in_the_readme():
    from mailferry.models.notification import NOTIFICATION_KINDS

    section = _readme().partition("## Notifications")[2].partition("\n## ")[0]
    for kind in NOTIFICATION_KINDS:
        assert f"(`{kind}`)" in section, kind
    assert "PUT /api/v1/account/notifications" in section and "Account page" in section

def test_the_privacy_section_names_the_retention_settings_and_the_comparison():
    readme = _readme()
    privacy = readme[readme.index("## Privacy"):readme.index("## Docker")]
    for text in ("RETENTION_DAYS", "LOG_RETENTION_DAYS", "content deleted on", "Forward Email", "SimpleLogin",
                 "Backups are", "(#privacy)"):
        assert text in (privacy if text != "(#privacy)" else readme), text

