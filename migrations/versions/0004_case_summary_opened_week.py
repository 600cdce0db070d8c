"""case summary: the ISO week of opening, for metrics by week

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 01:30:00
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_week", sa.String(length=10), nullable=True))
    # Cases summarized before: their week, computed as the appender computes it.
    summary = sa.table(
        "case_summary",
        sa.column("case_id", sa.String),
        sa.column("opened_at", sa.DateTime(timezone=True)),
        sa.column("opened_week", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(summary.c.case_id, summary.c.opened_at)).all()
    updates = [{"id": case_id, "week": _iso_week(opened)} for case_id, opened in rows]
    if updates:
        connection.execute(
            summary.update()
            .where(summary.c.case_id == sa.bindparam("id"))
            .values(opened_week=sa.bindparam("week")),
            updates,
        )


def downgrade() -> None:
    with op.batch_alter_table("case_summary", schema=None) as batch_op:
        batch_op.drop_column("opened_week")


def _iso_week(moment: datetime) -> str:
    # A copy of activities.ledger.tables.iso_week: a migration must not change when the app does.
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"
