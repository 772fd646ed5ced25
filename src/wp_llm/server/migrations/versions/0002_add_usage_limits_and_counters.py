"""add usage limits and counters

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_limits",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("rate_limit_burst", sa.Integer(), nullable=True),
        sa.Column("event_quota", sa.BigInteger(), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "rate_limit_notices",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("window_ends", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "usage_periods",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("warned_percent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quota_notified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "period_start"),
    )


def downgrade() -> None:
    op.drop_table("usage_periods")
    op.drop_table("rate_limit_notices")
    op.drop_table("rate_limit_buckets")
    op.drop_table("account_limits")
