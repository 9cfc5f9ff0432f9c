"""batches.owner: the worker that holds a batch's lease (claims and renewals name it)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (batches in flight keep their heartbeat
    # and are claimed again by the lease rules once it runs out).
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("owner")
