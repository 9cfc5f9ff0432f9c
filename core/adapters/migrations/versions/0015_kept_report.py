"""ledger_retention.kept: what the report reads from a ledger, kept when retention removes it

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


def downgrade() -> None:
    with op.batch_alter_table("ledger_retention", schema=None) as batch_op:
        batch_op.drop_column("kept")
