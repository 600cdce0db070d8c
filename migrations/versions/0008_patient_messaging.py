"""patient messaging: outbound messages, consent, SMS conversations, inbound messages, portal outbox

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbound_message",
        sa.Column("attempt_id", sa.String(length=200), primary_key=True),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("patient", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.Column("sender", sa.String(), nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column("delivery", sa.String(), nullable=True),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("body", sa.String(), nullable=False),
        _at("created_at"),
        _at("sent_at", nullable=True),
        _at("delivery_at", nullable=True),
        sa.UniqueConstraint("provider_id", name="uq_outbound_message_provider_id"),
    )
    op.create_index("ix_outbound_message_case_id", "outbound_message", ["case_id"])
    op.create_index("ix_outbound_message_address_hash", "outbound_message", ["address_hash"])
    op.create_index("ix_outbound_message_created_at", "outbound_message", ["created_at"])

    op.create_table(
        "messaging_consent",
        sa.Column("address_hash", sa.String(length=64), primary_key=True),
        sa.Column("channel", sa.String(), primary_key=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("keyword", sa.String(), nullable=True),
        _at("at"),
    )

    op.create_table(
        "sms_conversation",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        _at("opened_at"),
        _at("released_at", nullable=True),
    )
    op.create_index("ix_sms_conversation_case_id", "sms_conversation", ["case_id"])
    op.create_index(
        "uq_sms_conversation_open",
        "sms_conversation",
        ["address_hash", "sender"],
        unique=True,
        sqlite_where=sa.text("released_at IS NULL"),
        postgresql_where=sa.text("released_at IS NULL"),
    )

    op.create_table(
        "inbound_message",
        sa.Column("provider_id", sa.String(length=64), primary_key=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("attempt_id", sa.String(), nullable=True),
        sa.Column("case_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        _at("received_at"),
    )
    op.create_index("ix_inbound_message_case_id", "inbound_message", ["case_id"])

    op.create_table(
        "portal_outbox",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("attempt_id", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("patient", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("body", sa.String(), nullable=False),
        _at("created_at"),
        _at("read_at", nullable=True),
        sa.UniqueConstraint("attempt_id", name="uq_portal_outbox_attempt_id"),
    )
    op.create_index("ix_portal_outbox_case_id", "portal_outbox", ["case_id"])
    op.create_index("ix_portal_outbox_patient", "portal_outbox", ["patient"])


def downgrade() -> None:
    for table in (
        "portal_outbox",
        "inbound_message",
        "sms_conversation",
        "messaging_consent",
        "outbound_message",
    ):
        op.drop_table(table)
