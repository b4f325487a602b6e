"""sweeps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:33:55.270861
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('experiment', sa.String(length=200), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('seeds', sa.Integer(), nullable=False),
    sa.Column('max_parallel', sa.Integer(), nullable=False),
    sa.Column('trials_created', sa.Integer(), nullable=False),
    sa.Column('objective_metric', sa.String(length=250), nullable=False),
    sa.Column('objective_goal', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('importance', sa.JSON(), nullable=True),
    sa.Column('mlflow_parent_run_id', sa.String(length=64), nullable=True),
    sa.Column('lock', sa.String(length=36), nullable=True),
    sa.Column('lock_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_status'), ['status'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sweep_trial', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sweep_seed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sweep_params', sa.JSON(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_jobs_sweep_id_sweeps'), 'sweeps', ['sweep_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_jobs_sweep_id_sweeps'), type_='foreignkey')
        batch_op.drop_column('sweep_params')
        batch_op.drop_column('sweep_seed')
        batch_op.drop_column('sweep_trial')

    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_status'))

    op.drop_table('sweeps')
