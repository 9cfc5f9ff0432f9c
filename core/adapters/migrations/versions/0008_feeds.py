"""feeds, feed_items, feed_pacing: alerts from RSS/Atom; article_gates: the publish-readiness gate

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("etag", sa.String(length=400), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("primed", sa.Boolean(), nullable=False),
        sa.Column("next_poll_at", sa.Float(), nullable=False),
        sa.Column("last_polled_at", sa.Float(), nullable=True),
        sa.Column("last_ok_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_error_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
        sa.UniqueConstraint("url_hash", name=op.f("uq_feeds_url_hash")),
    )
    op.create_index(op.f("ix_feeds_next_poll_at"), "feeds", ["next_poll_at"])
    op.create_table(
        "feed_items",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feeds.id"],
            name=op.f("fk_feed_items_feed_id_feeds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_items")),
        sa.UniqueConstraint("feed_id", "key_hash", name=op.f("uq_feed_items_feed_id_key_hash")),
    )
    op.create_index(op.f("ix_feed_items_state"), "feed_items", ["state"])
    op.create_table(
        "feed_pacing",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_auto_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_pacing")),
    )
    op.create_table(
        "article_gates",
        sa.Column("alert_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("next_check_at", sa.Float(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("last_answer", sa.String(length=200), nullable=True),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("released_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_article_gates_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_article_gates")),
    )
    op.create_index(op.f("ix_article_gates_state"), "article_gates", ["state"])


def downgrade() -> None:
    op.drop_table("article_gates")
    op.drop_table("feed_pacing")
    op.drop_table("feed_items")
    op.drop_table("feeds")
