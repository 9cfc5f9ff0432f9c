"""A reader's quiet hours and daily cap on the subscription row (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from core.adapters import tables as t
from core.quiet import QuietHours, ReaderPreferences


class SqlPreferences:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_preferences(self, subscription_id: int) -> ReaderPreferences:
        s = t.subscriptions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    s.c.quiet_start, s.c.quiet_end, s.c.quiet_zone, s.c.tz_offset_min, s.c.daily_cap
                ).where(s.c.id == subscription_id)
            ).first()
        if row is None:
            return ReaderPreferences()
        quiet = None
        if row.quiet_start is not None and row.quiet_end is not None and row.quiet_zone:
            quiet = QuietHours(
                row.quiet_start, row.quiet_end, row.quiet_zone, row.tz_offset_min or 0
            )
        return ReaderPreferences(quiet, row.daily_cap)

    def set_preferences(
        self, subscription_id: int, prefs: ReaderPreferences, *, lang: str | None = None
    ) -> bool:
        """Quiet hours and cap, and the reader's language unless lang is None, in one UPDATE."""
        q = prefs.quiet
        values: dict[str, object] = {
            "quiet_start": None if q is None else q.start_min,
            "quiet_end": None if q is None else q.end_min,
            "quiet_zone": None if q is None else q.zone,
            "quiet_start_utc": None if q is None else q.start_utc,
            "quiet_end_utc": None if q is None else q.end_utc,
            "daily_cap": prefs.daily_cap,
        }
        if q is not None:
            # The cap counts per local day: the zone of the quiet hours, else UTC.
            values["tz_offset_min"] = q.offset_min
        if lang is not None:
            values["lang"] = lang
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.subscriptions)
                .where(t.subscriptions.c.id == subscription_id)
                .values(values)
            ).rowcount
        return changed == 1


# What a pushsubscriptionchange carries to the new endpoint, besides the topics.
CARRIED = (
    "quiet_start",
    "quiet_end",
    "quiet_zone",
    "tz_offset_min",
    "quiet_start_utc",
    "quiet_end_utc",
    "daily_cap",
    "cap_day",
    "cap_count",
)


def choices_of(conn: Connection, subscription_id: int) -> dict[str, Any]:
    """A reader's quiet hours, cap (and today's count) and followed stories, read in `conn`'s
    transaction (locked on PostgreSQL) so a move can carry them in that same transaction."""
    s, f = t.subscriptions, t.story_follows
    query = select(*(s.c[name] for name in CARRIED)).where(s.c.id == subscription_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    follows = conn.execute(
        select(f.c.story_key, f.c.created_at).where(f.c.subscription_id == subscription_id)
    ).all()
    return {"row": dict(row) if row else {}, "follows": [tuple(x) for x in follows]}


def carry_choices(conn: Connection, subscription_id: int, choices: dict[str, Any]) -> None:
    """Give `choices_of` another subscription's row, in the caller's transaction."""
    s, f = t.subscriptions, t.story_follows
    if choices["row"]:
        conn.execute(update(s).where(s.c.id == subscription_id).values(choices["row"]))
    conn.execute(f.delete().where(f.c.subscription_id == subscription_id))
    if choices["follows"]:
        conn.execute(
            insert(f),
            [
                {"story_key": key, "subscription_id": subscription_id, "created_at": at}
                for key, at in choices["follows"]
            ],
        )
