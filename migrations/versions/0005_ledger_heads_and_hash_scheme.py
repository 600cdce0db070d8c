"""ledger: each entry names its hash scheme and is sealed; each case's signed head anchors it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        # Entries written before hashed every field, their summary's wording included.
        batch_op.add_column(
            sa.Column("hash_scheme", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("seal", sa.String(), nullable=True))
    op.create_table(
        "ledger_head",
        sa.Column("case_id", sa.String(), primary_key=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_head")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_column("seal")
        batch_op.drop_column("hash_scheme")
