"""event_seconds: when counted displays and clicks happened (the report's chart)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_seconds",
        sa.Column("alert_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("second", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("displayed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clicked", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "second", name=op.f("pk_event_seconds")),
    )


def downgrade() -> None:
    op.drop_table("event_seconds")
