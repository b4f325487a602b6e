"""limits: what each job may record, and each owner's jobs in all (their quota); the sampled points a sweep refused

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('owner_usage',
                    sa.Column('owner', sa.String(length=200), nullable=False),
                    sa.Column('reserved_bytes', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('owner', name=op.f('pk_owner_usage')))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved_bytes', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused_points', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('refused_points')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('reserved_bytes')
    op.drop_table('owner_usage')
