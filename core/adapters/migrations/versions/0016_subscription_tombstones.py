"""subscription_tombstones: a subscription deleted as gone (404/410) keeps what a
pushsubscriptionchange needs to move the reader, for NEWSFLASH_TOMBSTONE_DAYS

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_CHOICES = (
    ("platform", sa.String(length=16)),
    ("quiet_start", sa.SmallInteger()),
    ("quiet_end", sa.SmallInteger()),
    ("quiet_zone", sa.String(length=64)),
    ("tz_offset_min", sa.SmallInteger()),
    ("quiet_start_utc", sa.SmallInteger()),
    ("quiet_end_utc", sa.SmallInteger()),
    ("daily_cap", sa.SmallInteger()),
    ("cap_day", sa.Integer()),
    ("cap_count", sa.SmallInteger()),
    ("follows", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "subscription_tombstones",
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("gone_at", sa.Float(), nullable=False),
        sa.Column("topic_mask", sa.BigInteger(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        *(sa.Column(name, kind, nullable=True) for name, kind in _CHOICES),
        sa.PrimaryKeyConstraint("endpoint_hash", name=op.f("pk_subscription_tombstones")),
    )
    # Retention deletes expired tombstones by age, a chunk at a time.
    op.create_index(
        op.f("ix_subscription_tombstones_gone_at"), "subscription_tombstones", ["gone_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subscription_tombstones_gone_at"), "subscription_tombstones")
    op.drop_table("subscription_tombstones")
