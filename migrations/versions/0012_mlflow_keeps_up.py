"""MLflow keeps up: when each run was finished in MLflow, how many points it is due, whose series goes next

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mirror_points_due', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('mlflow_run_finished_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('mirror_series_at', sa.DateTime(timezone=True), nullable=True))
    # runs already mirrored as synced were finished in MLflow when they were written
    op.execute("UPDATE jobs SET mlflow_run_finished_at = finished_at, mirror_points_due = mirror_points "
               "WHERE mirror_state = 'synced'")


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('mirror_series_at')
        batch_op.drop_column('mlflow_run_finished_at')
        batch_op.drop_column('mirror_points_due')
