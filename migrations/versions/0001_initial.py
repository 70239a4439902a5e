"""initial intake schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reporters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=512), nullable=False),
    sa.Column('display_name', sa.String(length=512), nullable=False),
    sa.Column('created_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reporters')),
    sa.UniqueConstraint('address', name=op.f('uq_reporters_address'))
    )
    op.create_table('tracking_counters',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_tracking_counters'))
    )
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracking_id', sa.String(length=32), nullable=False),
    sa.Column('origin_key', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('envelope_sender', sa.String(length=512), nullable=False),
    sa.Column('suggested_severity', sa.String(length=16), nullable=True),
    sa.Column('credit_as', sa.String(length=255), nullable=True),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=False),
    sa.Column('endpoints', sa.JSON(), nullable=False),
    sa.Column('received_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id'], name=op.f('fk_reports_reporter_id_reporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('origin_key', name=op.f('uq_reports_origin_key')),
    sa.UniqueConstraint('tracking_id', name=op.f('uq_reports_tracking_id'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_reporter_id'), ['reporter_id'], unique=False)

    op.create_table('inbound_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('received_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('peer', sa.String(length=255), nullable=False),
    sa.Column('helo', sa.String(length=255), nullable=False),
    sa.Column('envelope_from', sa.String(length=512), nullable=False),
    sa.Column('envelope_to', sa.JSON(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('next_attempt_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_inbound_messages_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_sha256'), ['sha256'], unique=False)
        batch_op.create_index('ix_inbound_messages_status_next_attempt', ['status', 'next_attempt_at'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('from_address', sa.String(length=512), nullable=False),
    sa.Column('from_name', sa.String(length=512), nullable=False),
    sa.Column('to_addresses', sa.JSON(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('message_id', sa.String(length=512), nullable=True),
    sa.Column('in_reply_to', sa.String(length=512), nullable=True),
    sa.Column('date_header', mailintake.storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', mailintake.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_from_html', sa.Boolean(), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('parse_defects', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], name=op.f('fk_messages_inbound_id_inbound_messages')),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_messages_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('inbound_id', name=op.f('uq_messages_inbound_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_report_id'), ['report_id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=1024), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_attachments_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_message_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_report_id'))
        batch_op.drop_index(batch_op.f('ix_messages_message_id'))

    op.drop_table('messages')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_status_next_attempt')
        batch_op.drop_index(batch_op.f('ix_inbound_messages_sha256'))

    op.drop_table('inbound_messages')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_reporter_id'))
        batch_op.drop_index(batch_op.f('ix_reports_received_at'))

    op.drop_table('reports')
    op.drop_table('tracking_counters')
    op.drop_table('reporters')
