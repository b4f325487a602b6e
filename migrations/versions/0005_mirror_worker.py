"""mirror worker: when a job's MLflow run was requested; an owner's jobs by id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 04:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mlflow_run_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_jobs_owner_id', ['owner', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_owner_id')
        batch_op.drop_column('mlflow_run_requested_at')
