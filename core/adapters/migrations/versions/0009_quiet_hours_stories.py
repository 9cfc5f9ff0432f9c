"""Reader quiet hours and daily cap, held/capped counts per alert, followable stories

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SUBSCRIPTION_COLUMNS = (
    ("quiet_start", sa.SmallInteger()),
    ("quiet_end", sa.SmallInteger()),
    ("quiet_zone", sa.String(length=64)),
    ("tz_offset_min", sa.SmallInteger()),
    ("quiet_start_utc", sa.SmallInteger()),
    ("quiet_end_utc", sa.SmallInteger()),
    ("daily_cap", sa.SmallInteger()),
    ("cap_day", sa.Integer()),
    ("cap_count", sa.SmallInteger()),
)
_ALERT_COUNTERS = ("held", "released", "capped", "expired")


def upgrade() -> None:
    # All nullable or with a server default: existing rows need no rewrite.
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        for name, kind in _SUBSCRIPTION_COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for name in _ALERT_COUNTERS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    op.create_table(
        "stories",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("closes_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_stories")),
    )
    op.create_index(op.f("ix_stories_created_at"), "stories", ["created_at"])
    op.create_table(
        "story_follows",
        sa.Column("story_key", sa.String(length=32), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("story_key", "subscription_id", name=op.f("pk_story_follows")),
    )
    op.create_index(op.f("ix_story_follows_subscription_id"), "story_follows", ["subscription_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_story_follows_subscription_id"), table_name="story_follows")
    op.drop_table("story_follows")
    op.drop_index(op.f("ix_stories_created_at"), table_name="stories")
    op.drop_table("stories")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for name in _ALERT_COUNTERS:
            batch_op.drop_column(name)
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        for name, _ in reversed(_SUBSCRIPTION_COLUMNS):
            batch_op.drop_column(name)
