"""protect recipients and owners: mailboxes (verified destinations), bounce events, notifications, retention,
two-factor authentication, API token expiry and scope, the audit log

Every destination an alias names today, and every account's own address, becomes a mailbox verified by
"migration": they were in use before confirmation existed, and forwarding that works must not stop at upgrade.
New destinations need their owner's confirmation (REQUIRE_VERIFIED_DESTINATIONS). The audit log is append-only:
triggers refuse UPDATE and DELETE on both databases.

Revision ID: 0004
Revises: 0003
"""
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_events is append-only"


def upgrade() -> None:
    op.create_table(
        'mailboxes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('verified_at', sa.DateTime(), nullable=True),
        sa.Column('verified_by', sa.String(length=16), nullable=False, server_default=''),
        sa.Column('confirm_nonce', sa.String(length=64), nullable=False, server_default=''),
        sa.Column('confirm_sent_at', sa.DateTime(), nullable=True),
        sa.Column('suspended_at', sa.DateTime(), nullable=True),
        sa.Column('suspended_reason', sa.String(length=255), nullable=False, server_default=''),
        sa.Column('unknown_user_streak', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_mailboxes_owner_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
        sa.UniqueConstraint('owner_id', 'address', name=op.f('uq_mailboxes_owner_id')),
    )
    op.create_index(op.f('ix_mailboxes_owner_id'), 'mailboxes', ['owner_id'])
    op.create_index(op.f('ix_mailboxes_address'), 'mailboxes', ['address'])
    op.create_table(
        'bounce_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False, server_default=''),
        sa.Column('reply', sa.String(length=512), nullable=False, server_default=''),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_bounce_events_mailbox_id_mailboxes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events')),
    )
    op.create_index('ix_bounce_events_mailbox_at', 'bounce_events', ['mailbox_id', 'at'])
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('message_id', sa.String(length=32), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
        sa.UniqueConstraint('user_id', 'kind', 'key', name=op.f('uq_notifications_user_id')),
    )
    op.create_index(op.f('ix_notifications_user_id'), 'notifications', ['user_id'])
    op.create_index(op.f('ix_notifications_created_at'), 'notifications', ['created_at'])
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=255), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    )
    op.create_index(op.f('ix_recovery_codes_user_id'), 'recovery_codes', ['user_id'])
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=320), nullable=False, server_default=''),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('object_type', sa.String(length=32), nullable=False, server_default=''),
        sa.Column('object_id', sa.String(length=64), nullable=False, server_default=''),
        sa.Column('summary', sa.Text(), nullable=False, server_default=''),
        sa.Column('details', sa.Text(), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=False, server_default=''),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    for column in ('at', 'actor_id', 'owner_id'):
        op.create_index(op.f(f'ix_audit_events_{column}'), 'audit_events', [column])
    _append_only_triggers()
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('notification_prefs', sa.Text(), nullable=True))
        batch.add_column(sa.Column('totp_secret_enc', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('totp_enabled_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('read_only', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('content_deleted_at', sa.DateTime(), nullable=True))
    op.create_index('ix_messages_completed_at', 'messages', ['completed_at'])
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('delay_warned_at', sa.DateTime(), nullable=True))
    _mailboxes_for_what_is_in_use()


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END; $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""")
        return
    for event in ('UPDATE', 'DELETE'):
        op.execute(f"""CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END""")


def _mailboxes_for_what_is_in_use() -> None:
    conn = op.get_bind()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    wanted: set[tuple[int, str]] = set()
    for user_id, email in conn.execute(sa.text("SELECT id, email FROM users")):
        wanted.add((user_id, email.strip().lower()))
    rows = conn.execute(sa.text("SELECT d.owner_id, a.destinations FROM aliases a JOIN domains d ON d.id = a.domain_id"))
    for owner_id, destinations in rows:
        for address in json.loads(destinations or "[]"):
            wanted.add((owner_id, address.strip().lower()))
    mailboxes = sa.table('mailboxes', sa.column('owner_id'), sa.column('address'), sa.column('verified_at'),
                         sa.column('verified_by'), sa.column('created_at'))
    if wanted:
        op.bulk_insert(mailboxes, [{"owner_id": o, "address": a, "verified_at": now, "verified_by": "migration",
                                    "created_at": now} for o, a in sorted(wanted)])


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('delay_warned_at')
    op.drop_index('ix_messages_completed_at', table_name='messages')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('content_deleted_at')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('read_only')
        batch.drop_column('expires_at')
    with op.batch_alter_table('users') as batch:
        for column in ('totp_last_step', 'totp_enabled_at', 'totp_secret_enc', 'notification_prefs'):
            batch.drop_column(column)
    op.drop_table('audit_events')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    for table in ('recovery_codes', 'notifications', 'bounce_events', 'mailboxes'):
        op.drop_table(table)
