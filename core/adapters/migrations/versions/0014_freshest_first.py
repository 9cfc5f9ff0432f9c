"""alerts.planned_seen (the freshest-first planning cursor) and an index on subscriptions
(last_seen_at, id) for the walk

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: an alert planned (or half planned) before this keeps its id order.
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("planned_seen", sa.Float(), nullable=True))
    op.create_index("ix_subscriptions_seen_id", "subscriptions", ["last_seen_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_seen_id", table_name="subscriptions")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("planned_seen")
