"""SQLAlchemy table definitions (the schema Alembic's migrations create)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

# SQLite only auto-increments an "INTEGER PRIMARY KEY"; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

topics = Table(
    "topics",
    metadata,
    Column("slug", String(32), primary_key=True),
    # Subscriptions store their topics as a bitmask: audience pages are one index walk.
    Column("bit", SmallInteger, nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("default_on", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint", Text, nullable=False, unique=True),
    Column("p256dh", String(100), nullable=False),
    Column("auth", String(32), nullable=False),
    Column("topic_mask", BigInteger, nullable=False),
    Column("push_host", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False, index=True),
    Column("expires_at", Float, nullable=True),
    Column("test_device_user_id", Integer, nullable=True, index=True),
    Column("lang", String(8), nullable=False, server_default="en"),
    # Quiet hours as the reader chose them (local minutes of the day, IANA zone) and as the
    # planner compares them (UTC minutes, from the zone's offset when saved); see core/quiet.py.
    Column("quiet_start", SmallInteger, nullable=True),
    Column("quiet_end", SmallInteger, nullable=True),
    Column("quiet_zone", String(64), nullable=True),
    Column("tz_offset_min", SmallInteger, nullable=True),
    Column("quiet_start_utc", SmallInteger, nullable=True),
    Column("quiet_end_utc", SmallInteger, nullable=True),
    # Most non-breaking alerts per local day, and how many this reader got on cap_day.
    Column("daily_cap", SmallInteger, nullable=True),
    Column("cap_day", Integer, nullable=True),
    Column("cap_count", SmallInteger, nullable=True),
    Column("platform", String(16), nullable=True),  # android, ios, desktop: the widget's word
    # The planner's freshest-first walk reads pages along this index, newest first.
    Index("ix_subscriptions_seen_id", "last_seen_at", "id"),
)

# A subscription deleted because its push service answered 404/410 (only then), kept for
# NEWSFLASH_TOMBSTONE_DAYS so a pushsubscriptionchange that waited can still move the reader
# (core/tombstones.py): SHA-256 digests of the endpoint and the auth secret (hex), never
# either itself, and the reader's choices as the subscription row held them.
subscription_tombstones = Table(
    "subscription_tombstones",
    metadata,
    Column("endpoint_hash", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("gone_at", Float, nullable=False, index=True),
    Column("topic_mask", BigInteger, nullable=False),
    Column("lang", String(8), nullable=False),
    Column("platform", String(16), nullable=True),
    Column("quiet_start", SmallInteger, nullable=True),
    Column("quiet_end", SmallInteger, nullable=True),
    Column("quiet_zone", String(64), nullable=True),
    Column("tz_offset_min", SmallInteger, nullable=True),
    Column("quiet_start_utc", SmallInteger, nullable=True),
    Column("quiet_end_utc", SmallInteger, nullable=True),
    Column("daily_cap", SmallInteger, nullable=True),
    Column("cap_day", Integer, nullable=True),
    Column("cap_count", SmallInteger, nullable=True),
    Column("follows", Text, nullable=True),  # JSON [[story key, followed at], ...]; NULL: none
)

# New and lost subscriptions per hour since the epoch (/ops shows them per newsroom day); rows
# are deleted when a reader leaves, so the loss can only be counted as it happens. Renewals
# (the browser's new subscription took over the reader's record: `moved` from a live row,
# `restored` from a tombstone) are the same readers, neither created nor lost.
subscription_churn = Table(
    "subscription_churn",
    metadata,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("created", BigInteger, nullable=False),
    Column("lost", BigInteger, nullable=False),
    Column("moved", BigInteger, nullable=False, default=0, server_default="0"),
    Column("restored", BigInteger, nullable=False, default=0, server_default="0"),
)

# The lost column of subscription_churn split by why ("unsubscribed", "gone", "purged",
# "moved"; "unknown" before reasons were kept), counted in the same transaction as the delete.
subscription_losses = Table(
    "subscription_losses",
    metadata,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("reason", String(16), primary_key=True),
    Column("lost", BigInteger, nullable=False),
)

# Final delivery outcomes per hour and push host, written with the ledger rows: the ledger
# cannot say this by itself (a gone reader's subscription row, with its host, is deleted), and
# weeks of ledger rows are too many to scan for /ops.
delivery_hours = Table(
    "delivery_hours",
    metadata,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("push_host", String(255), primary_key=True),
    Column("delivered", BigInteger, nullable=False),
    Column("gone", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
)

# How many subscriptions hold each exact topic set: audience sizes without counting rows.
mask_counts = Table(
    "mask_counts",
    metadata,
    Column("mask", BigInteger, primary_key=True, autoincrement=False),
    Column("count", BigInteger, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, default="normal"),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("image", Text, nullable=True),
    Column("icon", Text, nullable=True),
    Column("topics", Text, nullable=False),  # JSON list of slugs, as published
    Column("topic_mask", BigInteger, nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("ttl_s", Integer, nullable=False),
    Column("story_key", String(32), nullable=False),
    Column("article_id", String(200), nullable=True, unique=True),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("corrects_id", BigInteger, ForeignKey("alerts.id"), nullable=True, index=True),
    Column("test_user_id", Integer, nullable=True),
    Column("created_by", String(320), nullable=True),
    Column("status", String(16), nullable=False, index=True),
    Column("send_at", Float, nullable=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("queued_at", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("cancelled_at", Float, nullable=True),
    Column("progress_at", Float, nullable=True),
    Column("planned", Boolean, nullable=False, default=False),
    Column("planned_through", BigInteger, nullable=False, default=0),
    # The freshest-first walk's last_seen_at at the cursor (with planned_through's id); -1 in the
    # final sweep; NULL in id order (core/freshness.py).
    Column("planned_seen", Float, nullable=True),
    Column("batches_total", Integer, nullable=False, default=0),
    Column("batches_done", Integer, nullable=False, default=0),
    Column("audience", BigInteger, nullable=False, default=0),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("gone", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("displayed", BigInteger, nullable=False, default=0),
    Column("clicked", BigInteger, nullable=False, default=0),
    # Click-through URLs carry the UTM tags unless the editor switched them off for this alert.
    Column("utm", Boolean, nullable=False, server_default=true()),
    # Readers' choices: held for quiet hours, of those released later or expired (TTL ran out
    # first), and skipped because the reader's daily cap was reached.
    Column("held", BigInteger, nullable=False, default=0, server_default="0"),
    Column("released", BigInteger, nullable=False, default=0, server_default="0"),
    Column("capped", BigInteger, nullable=False, default=0, server_default="0"),
    Column("expired", BigInteger, nullable=False, default=0, server_default="0"),
    Column("lang", String(8), nullable=True),  # title and body's language; NULL: the default
    Column("translations", Text, nullable=True),  # JSON {"sw": {"title", "body"}}
)

batches = Table(
    "batches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(8), nullable=False, default="plan"),
    Column("subscription_ids", Text, nullable=False),  # JSON list: the page as planned
    Column("size", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    # The lease: who sends the batch now (host:pid:nonce) and when it last renewed.
    Column("heartbeat_at", Float, nullable=True),
    Column("owner", String(80), nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("runs", Integer, nullable=False, default=0),
    UniqueConstraint("alert_id", "seq"),
    Index("ix_batches_status_heartbeat", "status", "heartbeat_at"),
)

# The delivery ledger: one row per (alert, subscription) once a push was attempted.
deliveries = Table(
    "deliveries",
    metadata,
    Column("alert_id", BigInteger, primary_key=True, autoincrement=False),
    Column("subscription_id", BigInteger, primary_key=True, autoincrement=False),
    Column("status", SmallInteger, nullable=False),
    Column("attempts", SmallInteger, nullable=False, default=1),
    Column("status_code", SmallInteger, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    # Bits of the reader reports counted for this delivery (1 displayed, 2 clicked): each once.
    Column("events", SmallInteger, nullable=False, server_default="0"),
    Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_deliveries_alert_status", "alert_id", "status"),
)

# Followable stories, named by the founding alert's story key (tag and Topic of every update).
stories = Table(
    "stories",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("alert_id", BigInteger, nullable=False),
    Column("created_by", String(320), nullable=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("closes_at", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
)

story_follows = Table(
    "story_follows",
    metadata,
    Column("story_key", String(32), primary_key=True),
    Column("subscription_id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", Float, nullable=False),
    Index("ix_story_follows_subscription_id", "subscription_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_login_at", Float, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(320), nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(320), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=True),
    Column("detail", Text, nullable=True),  # JSON
    # Summary rows (refused logins): how many attempts, the last one's time, and the
    # (action, address, window) key they are counted under; NULL for ordinary entries.
    Column("count", Integer, nullable=False, default=1, server_default="1"),
    Column("last_at", Float, nullable=True),
    Column("summary_key", String(200), nullable=True, unique=True),
    Index("ix_audit_log_action", "action"),
    Index("ix_audit_log_actor", "actor"),
)

# Newsroom login sessions: the signed cookie carries a random id whose sha256 is the key here,
# so logout, a password or role change, or disabling a user ends a session on the server.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    # What the login was made from, for its owner's account page ("Chrome on Android").
    Column("device", String(80), nullable=True),
    Column("address", String(64), nullable=True),
)

webhook_receipts = Table(
    "webhook_receipts",
    metadata,
    Column("webhook_id", String(200), primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
)

# Saved alert formats ("BREAKING:", "LIVE:", ...): the compose page fills its fields from one,
# the API takes its name.
alert_templates = Table(
    "alert_templates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("prefix", String(64), nullable=False),
    Column("topics", Text, nullable=False),  # JSON list of slugs; [] keeps the editor's choice
    Column("urgency", String(16), nullable=False),
    Column("ttl_s", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(320), nullable=True),
)

# Alerts from a feed (core/feeds.py): the feeds the newsroom follows and the items that matched.
feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("url_hash", String(64), nullable=False, unique=True),
    Column("category", String(100), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("topics", Text, nullable=False),  # JSON list of slugs
    Column("created_at", Float, nullable=False),
    Column("created_by", String(320), nullable=True),
    Column("etag", String(400), nullable=True),
    Column("last_modified", String(100), nullable=True),
    Column("primed", Boolean, nullable=False, default=False),
    Column("next_poll_at", Float, nullable=False, default=0.0, index=True),
    Column("last_polled_at", Float, nullable=True),
    Column("last_ok_at", Float, nullable=True),
    Column("last_error", String(300), nullable=True),
    Column("last_error_at", Float, nullable=True),
)

feed_items = Table(
    "feed_items",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False),  # sha256 of the guid (else the link)
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("seen_at", Float, nullable=False),
    Column("published_at", Float, nullable=True),
    Column("note", String(300), nullable=True),
    Column("alert_id", BigInteger, nullable=True),
    Column("sent_at", Float, nullable=True),
    UniqueConstraint("feed_id", "key_hash"),
)

# One row: when the feeds last sent an alert on their own (the minimum gap is claimed here).
feed_pacing = Table(
    "feed_pacing",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_auto_at", Float, nullable=True),
)

# The publish-readiness gate: an alert waits here until its article answers 2xx (or time is up).
article_gates = Table(
    "article_gates",
    metadata,
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("next_check_at", Float, nullable=False, default=0.0),
    Column("checks", Integer, nullable=False, default=0),
    Column("last_answer", String(200), nullable=True),
    Column("released_at", Float, nullable=True),
    Column("released_by", String(320), nullable=True),
)

# When counted displays and clicks happened, per alert and whole second (the report's chart;
# deliveries.events only says whether, not when).
event_seconds = Table(
    "event_seconds",
    metadata,
    Column("alert_id", BigInteger, primary_key=True, autoincrement=False),
    Column("second", BigInteger, primary_key=True, autoincrement=False),
    Column("displayed", Integer, nullable=False, server_default="0"),
    Column("clicked", Integer, nullable=False, server_default="0"),
)

# The same counts folded into the report chart's steps once retention removed the alert's
# ledger (core/retention.py), a row per step at its last second. A table of their own: the
# folded seconds leave event_seconds altogether, so its emptied index pages are used again.
event_steps = Table(
    "event_steps",
    metadata,
    Column("alert_id", BigInteger, primary_key=True, autoincrement=False),
    Column("second", BigInteger, primary_key=True, autoincrement=False),
    Column("displayed", Integer, nullable=False, server_default="0"),
    Column("clicked", Integer, nullable=False, server_default="0"),
)

# Alerts whose ledger and batch id lists retention removed (core/retention.py): the report's
# milestones as they were ({rank: unix time} JSON), the rest of what the report read from the
# ledger (JSON: delivered-over-time steps, outcomes per push host, readers per platform; see
# report_sql.kept_parts), when pruning began and when it was done.
ledger_retention = Table(
    "ledger_retention",
    metadata,
    Column("alert_id", BigInteger, primary_key=True, autoincrement=False),
    Column("milestones", Text, nullable=False),
    Column("kept", Text, nullable=True),
    Column("pruned_at", Float, nullable=False),
    Column("cleared_at", Float, nullable=True, index=True),
)
