"""kept checkpoints: a job's training state at a cadence and after its last step, kept after it ends (what replays and forks start from)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 02:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'kept_checkpoints',
        sa.Column('job_id', sa.Integer(), sa.ForeignKey('jobs.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('step', sa.Integer(), primary_key=True),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('checkpoints_deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('checkpoints_deleted_at')
    op.drop_table('kept_checkpoints')
