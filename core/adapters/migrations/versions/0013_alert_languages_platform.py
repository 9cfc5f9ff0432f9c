"""alerts.lang and alerts.translations (an alert in more than one language);
subscriptions.platform (what the widget reported: android, ios, desktop)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # All nullable: existing alerts were written in NEWSFLASH_DEFAULT_LANG with no translations,
    # existing readers never reported a platform (counted from their push service alone).
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lang", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("translations", sa.Text(), nullable=True))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("platform")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("translations")
        batch_op.drop_column("lang")
