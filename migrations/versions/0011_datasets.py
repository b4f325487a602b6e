"""datasets: uploaded tables named by their content, their rows, and the dataset each job trains on

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 06:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'datasets',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('columns', sa.JSON(), nullable=False),
        sa.Column('preview', sa.JSON(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('upload_bytes', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_datasets_owner', 'datasets', ['owner'])
    op.create_index('ux_datasets_owner_digest', 'datasets', ['owner', 'digest'], unique=True)
    op.create_table(
        'dataset_blobs',
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('dataset_id'),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dataset_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_jobs_dataset_id', ['dataset_id'])


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_dataset_id')
        batch_op.drop_column('dataset_id')
    op.drop_table('dataset_blobs')
    op.drop_index('ux_datasets_owner_digest', table_name='datasets')
    op.drop_index('ix_datasets_owner', table_name='datasets')
    op.drop_table('datasets')
