"""outbox, automated mail marker

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.Column('envelope_from', sa.String(length=512), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('auto_reply_to', sa.String(length=512), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_reply', sa.String(length=500), nullable=True),
    sa.Column('created_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_outbox_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('key', name=op.f('uq_outbox_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_auto_reply_to'), ['auto_reply_to'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_report_id'), ['report_id'], unique=False)
        batch_op.create_index('ix_outbox_status_next_attempt', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('automated', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=35), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('language')
        batch_op.drop_column('automated')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_next_attempt')
        batch_op.drop_index(batch_op.f('ix_outbox_report_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_created_at'))
        batch_op.drop_index(batch_op.f('ix_outbox_auto_reply_to'))

    op.drop_table('outbox')
