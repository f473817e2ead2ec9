"""domain claims: several accounts may claim an unverified name, one verified row per name

Before, the first account to add a name held it (unique name), verified or not, so anyone could squat a domain.
Now the name is unique per owner, and among verified rows only (a partial unique index on both databases); the
first claim to pass the ownership check takes the name. Existing rows are unchanged: names were unique already.

Revision ID: 0006
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('domains') as batch:
        batch.drop_constraint('uq_domains_name', type_='unique')
        batch.create_unique_constraint(batch.f('uq_domains_owner_id'), ['owner_id', 'name'])
        batch.create_index(batch.f('ix_domains_name'), ['name'], unique=False)
    op.create_index('uq_domains_verified_name', 'domains', ['name'], unique=True,
                    postgresql_where=sa.text('verified'), sqlite_where=sa.text('verified'))


def downgrade() -> None:
    # Fails, as it must, while two accounts hold claims of one name: delete the extra claims first.
    op.drop_index('uq_domains_verified_name', table_name='domains')
    with op.batch_alter_table('domains') as batch:
        batch.drop_index(batch.f('ix_domains_name'))
        batch.drop_constraint(batch.f('uq_domains_owner_id'), type_='unique')
        batch.create_unique_constraint('uq_domains_name', ['name'])
