"""audience health: lost subscriptions per hour by reason, final deliveries per hour by push host

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_losses",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("lost", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "reason", name=op.f("pk_subscription_losses")),
    )
    # Losses counted before reasons were recorded keep their hour, reason unknown, so the
    # breakdown always adds up to subscription_churn.lost.
    op.execute(
        "INSERT INTO subscription_losses (hour, reason, lost) "
        "SELECT hour, 'unknown', lost FROM subscription_churn WHERE lost > 0"
    )
    op.create_table(
        "delivery_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("push_host", sa.String(length=255), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("gone", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "push_host", name=op.f("pk_delivery_hours")),
    )
    op.create_index(op.f("ix_alerts_created_at"), "alerts", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_created_at"), table_name="alerts")
    op.drop_table("delivery_hours")
    op.drop_table("subscription_losses")
