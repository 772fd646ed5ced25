"""add maintenance_runs, and indexes for delivery log filters by status and event type

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

UNFINISHED = "status <> 'succeeded'"


def upgrade() -> None:
    op.create_table(
        "maintenance_runs",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    for owner in ("webhook", "account"):
        op.create_index(
            f"ix_deliveries_{owner}_unfinished",
            "deliveries",
            [f"{owner}_id", "status", "id"],
            sqlite_where=sa.text(UNFINISHED),
            postgresql_where=sa.text(UNFINISHED),
        )
    op.create_index("ix_events_account_type", "events", ["account_id", "type", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_account_type", table_name="events")
    for owner in ("webhook", "account"):
        op.drop_index(f"ix_deliveries_{owner}_unfinished", table_name="deliveries")
    op.drop_table("maintenance_runs")
