"""ledger_retention.kept: what the report reads from a ledger, kept when retention removes it;
event_steps: an old alert's display and click counts folded into its chart's steps

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: alerts pruned before this kept only their milestones.
    with op.batch_alter_table("ledger_retention", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kept", sa.Text(), nullable=True))
    op.create_table(
        "event_steps",
        sa.Column("alert_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("second", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("displayed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clicked", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "second", name=op.f("pk_event_steps")),
    )
    # Alerts pruned before this still hold their per-second event counts: marked as pruning
    # again, the next retention runs fold those (their ledger and batches are gone already).
    op.execute("UPDATE ledger_retention SET cleared_at = NULL")


def downgrade() -> None:
    op.drop_table("event_steps")
    with op.batch_alter_table("ledger_retention", schema=None) as batch_op:
        batch_op.drop_column("kept")
