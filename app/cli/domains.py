"""flask domains add|list|records|verify|reverify-all|dmarc-rewrite|policy"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import get_db, get_settings
from app.services.domain_policy import PolicyValue, effective_policy, policy_dict, set_policy
from app.services.domains import add_domain, domain_dict, get_domain, list_domains
from app.services.errors import ServiceError
from app.services.users import get_user_by_email
from app.services.verification import ExpectedRecord, VerificationReport, expected_records, reverify_all, verify_domain

from .output import EXIT_NOT_VERIFIED, cli_command, emit, invocation

domains = AppGroup("domains", help="Add, list and verify domains.")


def record_lines(records: list[ExpectedRecord]) -> list[str]:
    lines = []
    for record in records:
        value = f"{record.priority} {record.value}" if record.priority is not None else record.value
        lines.append(f"  {record.type:<4} {record.name}\n       {value}")
    return lines


@domains.command("add")
@click.argument("name")
@click.option("--owner", required=True, help="Email of the user who will own the domain.")
@cli_command
def add(name: str, owner: str, as_json: bool) -> None:
    """Register NAME for OWNER; prints the DNS records to publish."""
    with get_db().session() as session:
        user = get_user_by_email(session, owner, "owner")
        domain = add_domain(session, name, user)
        data = {**domain_dict(domain), "records": [r.to_dict() for r in expected_records(domain, get_settings())]}
        lines = [f"Added {domain.name} (owner {user.email}). Publish these DNS records:",
                 *record_lines(expected_records(domain, get_settings())),
                 f"Then run: {invocation()} domains verify {domain.name}"]
    emit(as_json, data, lines)


@domains.command("list")
@cli_command
def list_(as_json: bool) -> None:
    """Every domain with its owner and verification state."""
    with get_db().session() as session:
        data = [domain_dict(d) for d in list_domains(session)]
    lines = [f"{d['name']:<40} {'verified' if d['verified'] else 'unverified':<10} {d['owner']}" for d in data]
    emit(as_json, data, lines or "No domains.")


@domains.command("records")
@click.argument("name")
@cli_command
def records(name: str, as_json: bool) -> None:
    """The DNS records NAME should publish."""
    with get_db().session() as session:
        found = expected_records(get_domain(session, name), get_settings())
    emit(as_json, [r.to_dict() for r in found], record_lines(found))


def report_lines(report: VerificationReport) -> list[str]:
    if report.taken_elsewhere:
        head = f"{report.domain}: the records pass, but another account verified this domain first."
    elif report.passed:
        head = f"{report.domain}: ownership and MX pass; mail is accepted."
    elif report.verified:
        state = "forced to verified by an admin" if report.forced else "verified earlier"
        head = f"{report.domain}: required records do not pass now ({state}; mail is still accepted)."
    else:
        head = f"{report.domain}: not verified; mail is refused until ownership and MX pass."
    lines = [head]
    for check in report.checks:
        mark = "pass" if check.ok else ("????" if check.temporary else "FAIL")
        lines.append(f"  [{mark}] {check.name:<9} {check.why}")
        if not check.ok:
            lines.append(f"         found:    {' | '.join(check.found) if check.found else '(nothing)'}")
            lines.append(f"         expected: {check.expected or '(see why)'}")
    return lines


@domains.command("verify")
@click.argument("name")
@click.option("--force", is_flag=True, help="Mark the domain verified even if the checks fail (admin).")
@cli_command
def verify(name: str, force: bool, as_json: bool) -> None:
    """Check NAME's DNS records now. Exit code 3 when ownership or MX do not pass (unless --force)."""
    with get_db().session() as session:
        report = verify_domain(session, get_domain(session, name), get_settings(), force=force)
    emit(as_json, report.to_dict(), report_lines(report))
    if not (report.passed or force):
        raise click.exceptions.Exit(EXIT_NOT_VERIFIED)


@domains.command("reverify-all")
@cli_command
def reverify(as_json: bool) -> None:
    """Re-check every domain and record records that broke (what the daily job runs)."""
    summary = reverify_all(get_db(), get_settings())
    lines = [f"Checked {summary['checked']} domains, {summary['passed']} pass ownership and MX."]
    lines += [f"  {name}: broke {', '.join(checks)}" for name, checks in summary["newly_broken"].items()]
    lines += [f"  domain #{e['domain_id']}: error {e['error']}" for e in summary["errors"]]
    if summary["notices"]:
        lines.append(f"Told owners about {summary['notices']} broken records.")
    emit(as_json, summary, lines)


@domains.command("dmarc-rewrite")
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@cli_command
def dmarc_rewrite(name: str, state: str, as_json: bool) -> None:
    """Rewrite From (to "Name via alias.domain" <alias>, Reply-To the sender) on mail forwarded for NAME when the
    sender's domain publishes DMARC p=reject. Off by default; workers pick a change up within a minute."""
    with get_db().session() as session:
        domain = get_domain(session, name)
        domain.rewrite_from_for_dmarc_reject = state == "on"
        data = {"name": domain.name, "rewrite_from_for_dmarc_reject": domain.rewrite_from_for_dmarc_reject}
    emit(as_json, data, f"{data['name']}: From rewrite for DMARC p=reject senders is {state}.")


POLICY_OPTIONS = {"dmarc_reject_policy": "--dmarc-reject", "dmarc_quarantine_policy": "--dmarc-quarantine",
                  "spam_action": "--spam-action", "spam_threshold": "--spam-threshold"}
POLICY_LABELS = {"dmarc_reject_policy": "DMARC fail, sender p=reject", "spam_action": "spam flagged by rspamd",
                 "dmarc_quarantine_policy": "DMARC fail p=quarantine, SPF -all", "spam_threshold": "spam score threshold"}


def policy_line(value: PolicyValue) -> str:
    shown = value.effective if value.effective is not None else "rspamd's own actions"
    source = "instance default" if value.is_default else "this domain"
    return f"  {POLICY_LABELS[value.field] + ':':<38} {shown} ({source})"


@domains.command("policy")
@click.argument("name")
@click.option("--dmarc-reject", "dmarc_reject_policy", metavar="reject|rewrite|quarantine|default",
              help="Mail failing DMARC from a sender publishing p=reject.")
@click.option("--dmarc-quarantine", "dmarc_quarantine_policy", metavar="quarantine|reject|forward|default",
              help="Mail failing DMARC from a p=quarantine sender, or failing SPF -all without aligned DKIM.")
@click.option("--spam-action", "spam_action", metavar="forward|quarantine|reject|default",
              help="Mail rspamd flags as spam (forward adds X-Spam headers).")
@click.option("--spam-threshold", "spam_threshold", metavar="N|default",
              help="A score at or over N (0-1000) counts as spam; default = rspamd's own actions.")
@cli_command
def policy(name: str, as_json: bool, **changes: str | None) -> None:
    """Show NAME's inbound policy, or change it with the options ("default" = the instance setting)."""
    given = {field: value for field, value in changes.items() if value is not None}
    with get_db().session() as session:
        domain = get_domain(session, name)
        try:
            set_policy(session, domain, **given)
        except ServiceError as exc:
            option = POLICY_OPTIONS.get(exc.field or "")
            raise ServiceError(exc.code, f"{option}: {exc.message}" if option else exc.message, exc.field) from None
        values = effective_policy(domain, get_settings())
        data = {"name": domain.name, "policy": policy_dict(domain, get_settings())}
        lines = [f"{domain.name}: inbound policy{' (saved)' if given else ''}",
                 *(policy_line(v) for v in values.values())]
    emit(as_json, data, lines)
