"""alert formats: saved templates (seeded with BREAKING, LIVE, UPDATE) and alerts.utm

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The three formats most newsrooms start with; admins edit or delete them at /editor/templates.
SEEDS: tuple[tuple[str, str, list[str], str, int], ...] = (
    ("breaking", "BREAKING: ", ["breaking"], "high", 3600),
    ("live", "LIVE: ", ["breaking"], "normal", 4 * 3600),
    ("update", "UPDATE: ", [], "normal", 12 * 3600),
)


def upgrade() -> None:
    templates = op.create_table(
        "alert_templates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=64), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("ttl_s", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_templates_name")),
    )
    now = time.time()
    op.bulk_insert(
        templates,
        [
            {
                "name": name,
                "prefix": prefix,
                "topics": json.dumps(topics),
                "urgency": urgency,
                "ttl_s": ttl_s,
                "created_at": now,
                "updated_at": now,
                "updated_by": None,
            }
            for name, prefix, topics, urgency, ttl_s in SEEDS
        ],
    )
    # A server default: every alert so far keeps the (new) default, tags on.
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("utm", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("utm")
    op.drop_table("alert_templates")
