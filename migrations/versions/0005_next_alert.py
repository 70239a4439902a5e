"""milestones: next_alert_at, so an SLA pass reads only the milestones whose next alert is due

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

import mailintake.storage.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_alert_at", mailintake.storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_milestones_next_alert_at"), ["next_alert_at"], unique=False)
    # Every deadline still to meet is looked at once more from its warning on: the pass skips
    # alerts already in the outbox (their keys) and moves each row on to its next alert.
    op.execute("UPDATE milestones SET next_alert_at = COALESCE(warn_at, due_at) WHERE awaiting")


def downgrade() -> None:
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestones_next_alert_at"))
        batch_op.drop_column("next_alert_at")
