"""subscription_churn.moved, .restored: renewals per hour (the browser's new subscription took
over the reader's record, from a live row or a tombstone), neither a sign-up nor a loss

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COLUMNS = ("moved", "restored")


def upgrade() -> None:
    # Renewals before this migration were not recorded: earlier hours count none.
    with op.batch_alter_table("subscription_churn", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    with op.batch_alter_table("subscription_churn", schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
