"""forks: a job that starts from another's state at a step (its parent and the step; earlier points read through the parent)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('forked_from_job', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('forked_from_step', sa.Integer(), nullable=True))
    op.create_index('ix_jobs_forked_from_job', 'jobs', ['forked_from_job'])


def downgrade() -> None:
    op.drop_index('ix_jobs_forked_from_job', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('forked_from_step')
        batch.drop_column('forked_from_job')
