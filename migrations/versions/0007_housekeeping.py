"""housekeeping: archived jobs, name and tag changes for the mirror to resend, MLflow runs of deleted jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mirror_meta_stale', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('archived', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_jobs_archived'), ['archived'], unique=False)
    op.create_table('mlflow_deletions',
                    sa.Column('run_id', sa.String(length=64), nullable=False),
                    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_mlflow_deletions')))


def downgrade() -> None:
    op.drop_table('mlflow_deletions')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_archived'))
        batch_op.drop_column('archived')
        batch_op.drop_column('mirror_meta_stale')
