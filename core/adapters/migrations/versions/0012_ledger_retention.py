"""ledger_retention: alerts whose ledger rows retention removed, with their report's milestones

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_retention",
        sa.Column("alert_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("milestones", sa.Text(), nullable=False),
        sa.Column("pruned_at", sa.Float(), nullable=False),
        sa.Column("cleared_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_ledger_retention")),
    )
    with op.batch_alter_table("ledger_retention", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_retention_cleared_at"), ["cleared_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        # Retention deletes a day's ledger at a time: vacuum at 5 % dead rows (default 20 %),
        # so their space is reused before the table grows.
        op.execute(
            "ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.05,"
            " autovacuum_analyze_scale_factor = 0.05)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE deliveries RESET (autovacuum_vacuum_scale_factor,"
            " autovacuum_analyze_scale_factor)"
        )
    with op.batch_alter_table("ledger_retention", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_retention_cleared_at"))
    op.drop_table("ledger_retention")
