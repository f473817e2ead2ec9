"""inbound trust: per-domain policy, what the inbound checks found per message, quarantine

The per-domain option `rewrite_from_for_dmarc_reject` becomes `dmarc_reject_policy = 'rewrite'` (the model
keeps the old name as a property); a domain that had it off takes the instance default (NULL).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('domains') as batch:
        batch.add_column(sa.Column('dmarc_reject_policy', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('dmarc_quarantine_policy', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('spam_action', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('spam_threshold', sa.Float(), nullable=True))
    op.execute("UPDATE domains SET dmarc_reject_policy = 'rewrite' WHERE rewrite_from_for_dmarc_reject")
    with op.batch_alter_table('domains') as batch:
        batch.drop_column('rewrite_from_for_dmarc_reject')
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('auth_results', sa.Text(), nullable=True))
        batch.add_column(sa.Column('rewrite_from', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('dsn_block', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('spam_score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('filter_reason', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        for column in ('filter_reason', 'spam_score', 'dsn_block', 'rewrite_from', 'auth_results'):
            batch.drop_column(column)
    with op.batch_alter_table('domains') as batch:
        batch.add_column(sa.Column('rewrite_from_for_dmarc_reject', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE domains SET rewrite_from_for_dmarc_reject = (dmarc_reject_policy = 'rewrite')")
    op.execute("UPDATE domains SET rewrite_from_for_dmarc_reject = false WHERE dmarc_reject_policy IS NULL")
    with op.batch_alter_table('domains') as batch:
        for column in ('spam_threshold', 'spam_action', 'dmarc_quarantine_policy', 'dmarc_reject_policy'):
            batch.drop_column(column)
