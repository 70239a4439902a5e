"""inbound_messages: claimed_until and claimed_by, so each stored delivery is worked on by one worker

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", mailintake.storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_inbound_messages_claimed_until"), ["claimed_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_messages_claimed_until"))
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claimed_until")
