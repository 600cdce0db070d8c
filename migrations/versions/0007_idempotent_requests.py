"""idempotent requests: an action's answer, kept a day under the caller's Idempotency-Key

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotent_request",
        sa.Column("user_id", sa.String(), primary_key=True),
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_idempotent_request_created_at", "idempotent_request", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotent_request_created_at", table_name="idempotent_request")
    op.drop_table("idempotent_request")
