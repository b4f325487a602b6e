"""sweep mirror: the state, error and lock of a sweep's MLflow parent run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 01:47:55.787607
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mirror_state', sa.String(length=16), server_default='pending', nullable=False))
        batch_op.add_column(sa.Column('mirror_error', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('mirror_lock', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('mirror_lock_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('mirror_lock_until')
        batch_op.drop_column('mirror_lock')
        batch_op.drop_column('mirror_error')
        batch_op.drop_column('mirror_state')
