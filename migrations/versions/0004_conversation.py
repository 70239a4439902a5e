"""conversation: flags, pauses, thread kinds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('started_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=255), nullable=False),
    sa.Column('ended_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_pauses_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pauses'))
    )
    with op.batch_alter_table('pauses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pauses_report_id'), ['report_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=24), nullable=False, server_default='report'))
        batch_op.add_column(sa.Column('author', sa.String(length=512), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('dedup_key', sa.String(length=600), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_messages_dedup_key'), ['dedup_key'])

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_message_id'), ['message_id'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('related_report_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('assignee', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('bounty', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('eta', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('duplicate_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_reports_related_report_id_reports'), 'reports', ['related_report_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_reports_duplicate_of_id_reports'), 'reports', ['duplicate_of_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reports_duplicate_of_id_reports'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_reports_related_report_id_reports'), type_='foreignkey')
        batch_op.drop_column('duplicate_of_id')
        batch_op.drop_column('eta')
        batch_op.drop_column('bounty')
        batch_op.drop_column('assignee')
        batch_op.drop_column('related_report_id')
        batch_op.drop_column('flag')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_id'))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_messages_dedup_key'), type_='unique')
        batch_op.drop_column('dedup_key')
        batch_op.drop_column('author')
        batch_op.drop_column('kind')

    with op.batch_alter_table('pauses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pauses_report_id'))

    op.drop_table('pauses')
