"""deliveries.events: which displayed / clicked reports were counted for each delivery

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL (11+) adds the column without rewriting the ledger.
    op.add_column(
        "deliveries",
        sa.Column("events", sa.SmallInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("events")
