"""mlflow mirror state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:03:46.829468
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mlflow_experiment_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('mlflow_run_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('mirror_state', sa.String(length=16), nullable=False, server_default='pending'))
        batch_op.add_column(sa.Column('mirror_error', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('mirror_cursor', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mirror_points', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('mirror_lock', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('mirror_lock_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_mirror_state'), ['mirror_state'], unique=False)

def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_mirror_state'))
        batch_op.drop_column('mirror_lock_until')
        batch_op.drop_column('mirror_lock')
        batch_op.drop_column('mirror_points')
        batch_op.drop_column('mirror_cursor')
        batch_op.drop_column('mirror_error')
        batch_op.drop_column('mirror_state')
        batch_op.drop_column('mlflow_run_id')
        batch_op.drop_column('mlflow_experiment_id')

