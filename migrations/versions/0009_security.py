"""security: the ids of the MLflow experiments the service created per owner (none is adopted by name); when each owner's job last started (fair turns)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Experiments an older version adopted by name are checked by the MLflow worker the first time it
    # needs each one after this upgrade (worker/mlflow/experiments.py: kept only if no other user holds
    # a permission on it), then recorded here.
    op.create_table(
        'mlflow_experiments',
        sa.Column('server', sa.String(length=500), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('experiment', sa.String(length=200), nullable=False),
        sa.Column('key', sa.String(length=32), nullable=False),
        sa.Column('mlflow_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('server', 'owner', 'experiment'),
    )


    with op.batch_alter_table('owner_usage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('owner_usage', schema=None) as batch_op:
        batch_op.drop_column('last_started_at')
    op.drop_table('mlflow_experiments')
