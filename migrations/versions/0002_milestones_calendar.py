"""milestones, calendar changes, report severity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calendar_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_by', sa.String(length=255), nullable=True),
    sa.Column('removed_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_changes'))
    )
    with op.batch_alter_table('calendar_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_changes_first_day'), ['first_day'], unique=False)

    op.create_table('milestones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('started_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('computed_due_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('promised_due_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('warn_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('met_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('met_by', sa.String(length=255), nullable=True),
    sa.Column('awaiting', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_milestones_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_milestones')),
    sa.UniqueConstraint('report_id', 'name', name=op.f('uq_milestones_report_id'))
    )
    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.create_index('ix_milestones_awaiting_due_at', ['awaiting', 'due_at'], unique=False)
        batch_op.create_index('ix_milestones_awaiting_warn_at', ['awaiting', 'warn_at'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('severity', sa.String(length=16), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('severity')

    with op.batch_alter_table('milestones', schema=None) as batch_op:
        batch_op.drop_index('ix_milestones_awaiting_warn_at')
        batch_op.drop_index('ix_milestones_awaiting_due_at')

    op.drop_table('milestones')
    with op.batch_alter_table('calendar_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_changes_first_day'))

    op.drop_table('calendar_changes')
