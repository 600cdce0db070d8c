"""case summary: requests to a payer (prior authorization), for their metrics

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("submissions", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("first_submitted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("hours_to_decision", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("first_pass_approved", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("pended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("denial_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("lapsed_unused", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        for column in (
            "lapsed_unused",
            "denial_reason",
            "pended_at",
            "first_pass_approved",
            "hours_to_decision",
            "first_submitted_at",
            "submissions",
        ):
            batch_op.drop_column(column)
