"""diagnoses: what the engine's diagnoser found in each job while it trained (dead units, vanishing gradients, a rising loss, ...)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'diagnoses',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('layer', sa.String(length=64), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('ended_step', sa.Integer(), nullable=True),
        sa.Column('sentence', sa.Text(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_id', 'kind', 'layer', 'step', name='uq_diagnoses_job_kind_layer_step'),
    )
    op.create_index('ix_diagnoses_job_id', 'diagnoses', ['job_id'])
    op.create_index('ix_diagnoses_kind', 'diagnoses', ['kind'])


def downgrade() -> None:
    op.drop_index('ix_diagnoses_kind', table_name='diagnoses')
    op.drop_index('ix_diagnoses_job_id', table_name='diagnoses')
    op.drop_table('diagnoses')
