"""add per-endpoint delivery settings and endpoint health to webhooks

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
CIRCUIT_OPEN = sa.text("circuit_state = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("timeout", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("retry_schedule", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "circuit_state", sa.String(length=16), server_default="closed", nullable=False
            )
        )
        batch_op.add_column(sa.Column("circuit_retry_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("paused_until", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_webhooks_circuit_open",
        "webhooks",
        ["circuit_retry_at"],
        sqlite_where=CIRCUIT_OPEN,
        postgresql_where=CIRCUIT_OPEN,
    )
    op.create_index(
        "ix_deliveries_webhook_due",
        "deliveries",
        ["webhook_id", "next_attempt_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_webhook_due", table_name="deliveries")
    op.drop_index("ix_webhooks_circuit_open", table_name="webhooks")
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        for name in (
            "paused_until",
            "circuit_retry_at",
            "circuit_state",
            "consecutive_failures",
            "retry_schedule",
            "timeout",
            "max_concurrency",
            "rate_limit",
        ):
            batch_op.drop_column(name)
