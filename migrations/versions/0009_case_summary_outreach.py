"""case summary: messages to the patient (sent and reached by channel, replies, opt-outs)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COUNTS = (
    "sms_sent",
    "sms_reached",
    "email_sent",
    "email_reached",
    "portal_sent",
    "portal_reached",
    "replies",
)


def upgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        for column in COUNTS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("first_message_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("hours_message_to_schedule", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        for column in ("hours_message_to_schedule", "first_message_at", "opted_out", *COUNTS):
            batch_op.drop_column(column)
