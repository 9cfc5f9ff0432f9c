"""ops: subscription churn per hour (new and lost subscriptions for /ops)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_churn",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("lost", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_subscription_churn")),
    )
    # Subscriptions that exist already count as new in the hour they were made.
    op.execute(
        "INSERT INTO subscription_churn (hour, created, lost) "
        "SELECT CAST(FLOOR(created_at / 3600) AS BIGINT), COUNT(*), 0 FROM subscriptions "
        "GROUP BY CAST(FLOOR(created_at / 3600) AS BIGINT)"
        if op.get_bind().dialect.name == "postgresql"
        else "INSERT INTO subscription_churn (hour, created, lost) "
        "SELECT CAST(created_at / 3600 AS INTEGER), COUNT(*), 0 FROM subscriptions "
        "GROUP BY CAST(created_at / 3600 AS INTEGER)"
    )


def downgrade() -> None:
    op.drop_table("subscription_churn")
