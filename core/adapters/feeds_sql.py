"""Feeds on SQL: the feeds the newsroom follows, their matching items, and the pacing of auto sends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters.sql import MAX_ID
from core.errors import Conflict
from core.feeds import Feed, FeedInput, FeedItem, FeedMode, ItemState, ParsedItem, key_hash

_PACING_ROW = 1
MAX_32 = 2**31 - 1  # feeds.id is an INTEGER


def _feed(row: Any) -> Feed:
    return Feed(
        id=int(row["id"]),
        url=row["url"],
        category=row["category"],
        mode=FeedMode(row["mode"]),
        topics=tuple(json.loads(row["topics"])),
        created_at=float(row["created_at"]),
        created_by=row["created_by"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        primed=bool(row["primed"]),
        last_polled_at=row["last_polled_at"],
        last_ok_at=row["last_ok_at"],
        last_error=row["last_error"],
        last_error_at=row["last_error_at"],
        next_poll_at=float(row["next_poll_at"]),
    )


def _item(row: Any) -> FeedItem:
    return FeedItem(
        id=int(row["id"]),
        feed_id=int(row["feed_id"]),
        key_hash=row["key_hash"],
        title=row["title"],
        summary=row["summary"],
        link=row["link"],
        state=ItemState(row["state"]),
        seen_at=float(row["seen_at"]),
        published_at=row["published_at"],
        note=row["note"],
        alert_id=None if row["alert_id"] is None else int(row["alert_id"]),
        sent_at=row["sent_at"],
    )


class SqlFeeds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- feeds ---------------------------------------------------------------------------------
    def list_feeds(self) -> list[Feed]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.feeds).order_by(t.feeds.c.id)).mappings()
            return [_feed(r) for r in rows]

    def get_feed(self, feed_id: int) -> Feed | None:
        if not 0 < feed_id <= MAX_32:
            return None  # an id from a URL: no row, and no driver overflow error
        with self.engine.connect() as conn:
            row = conn.execute(select(t.feeds).where(t.feeds.c.id == feed_id)).mappings().first()
            return None if row is None else _feed(row)

    def add_feed(self, feed: FeedInput, by: str | None, now: float) -> Feed:
        values = {
            "url": feed.url,
            "url_hash": hashlib.sha256(feed.url.encode("utf-8")).hexdigest(),
            "category": feed.category,
            "mode": feed.mode.value,
            "topics": json.dumps(list(feed.topics)),
            "created_at": now,
            "created_by": by,
            "primed": False,
            "next_poll_at": now,
        }
        try:
            with self.engine.begin() as conn:
                key = conn.execute(insert(t.feeds).values(**values)).inserted_primary_key
                assert key is not None
                feed_id = key[0]
        except IntegrityError:
            raise Conflict("this feed is already followed", "url") from None
        found = self.get_feed(int(feed_id))
        assert found is not None
        return found

    def set_mode(self, feed_id: int, mode: FeedMode) -> bool:
        if self.get_feed(feed_id) is None:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.feeds).where(t.feeds.c.id == feed_id).values(mode=mode.value)
            )
            return done.rowcount == 1

    def remove_feed(self, feed_id: int) -> bool:
        with self.engine.begin() as conn:
            conn.execute(delete(t.feed_items).where(t.feed_items.c.feed_id == feed_id))
            return conn.execute(delete(t.feeds).where(t.feeds.c.id == feed_id)).rowcount == 1

    def due_feeds(self, now: float, limit: int) -> list[Feed]:
        f = t.feeds
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(f).where(f.c.next_poll_at <= now).order_by(f.c.next_poll_at).limit(limit)
            ).mappings()
            return [_feed(r) for r in rows]

    def claim_poll(self, feed_id: int, seen_next: float, next_poll_at: float) -> bool:
        """Move the feed's next poll on; False if another poller got there first."""
        f = t.feeds
        with self.engine.begin() as conn:
            done = conn.execute(
                update(f)
                .where(f.c.id == feed_id, f.c.next_poll_at == seen_next)
                .values(next_poll_at=next_poll_at)
            )
            return done.rowcount == 1

    def record_ok(
        self, feed_id: int, now: float, etag: str | None, last_modified: str | None
    ) -> None:
        values: dict[str, Any] = {
            "last_polled_at": now,
            "last_ok_at": now,
            "last_error": None,
            "last_error_at": None,
            "primed": True,
        }
        if etag is not None or last_modified is not None:
            values.update(etag=(etag or None) and etag[:400], last_modified=last_modified)
        with self.engine.begin() as conn:
            conn.execute(update(t.feeds).where(t.feeds.c.id == feed_id).values(**values))

    def record_error(self, feed_id: int, now: float, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.feeds)
                .where(t.feeds.c.id == feed_id)
                .values(last_polled_at=now, last_error=message[:300], last_error_at=now)
            )

    # -- items ---------------------------------------------------------------------------------
    def add_items(
        self,
        feed_id: int,
        found: Sequence[tuple[ParsedItem, ItemState, str | None]],
        now: float,
    ) -> list[FeedItem]:
        """Insert the items not seen before (by key); returns only the new ones."""
        i = t.feed_items
        hashes = {key_hash(item.key): (item, state, note) for item, state, note in found}
        if not hashes:
            return []
        with self.engine.begin() as conn:
            known = set(
                conn.execute(
                    select(i.c.key_hash).where(
                        i.c.feed_id == feed_id, i.c.key_hash.in_(list(hashes))
                    )
                ).scalars()
            )
            new = [
                {
                    "feed_id": feed_id,
                    "key_hash": h,
                    "title": item.title,
                    "summary": item.summary,
                    "link": item.link,
                    "state": state.value,
                    "seen_at": now,
                    "published_at": item.published_at,
                    "note": note,
                }
                # Oldest first, so the newest item of the feed gets the highest id.
                for h, (item, state, note) in reversed(hashes.items())
                if h not in known
            ]
            if new:
                conn.execute(insert(i), new)
        return (
            self._items((i.c.feed_id == feed_id, i.c.key_hash.in_([n["key_hash"] for n in new])))
            if new
            else []
        )

    def _items(self, where: Iterable[Any], limit: int = 200) -> list[FeedItem]:
        i = t.feed_items
        with self.engine.connect() as conn:
            rows = conn.execute(select(i).where(*where).order_by(i.c.id.desc()).limit(limit))
            return [_item(r) for r in rows.mappings()]

    def get_item(self, item_id: int) -> FeedItem | None:
        if not 0 < item_id <= MAX_ID:
            return None
        found = self._items((t.feed_items.c.id == item_id,), 1)
        return found[0] if found else None

    def recent_items(self, states: Sequence[ItemState], limit: int = 50) -> list[FeedItem]:
        return self._items((t.feed_items.c.state.in_([s.value for s in states]),), limit)

    def set_item_state(
        self,
        item_id: int,
        state: ItemState,
        only_from: Sequence[ItemState],
        **values: Any,
    ) -> bool:
        i = t.feed_items
        with self.engine.begin() as conn:
            done = conn.execute(
                update(i)
                .where(i.c.id == item_id, i.c.state.in_([s.value for s in only_from]))
                .values(state=state.value, **values)
            )
            return done.rowcount == 1

    def next_queued(self, stale_before: float) -> FeedItem | None:
        """The oldest auto item waiting for its turn (or one whose send was cut off)."""
        i = t.feed_items
        found = self._items(
            (
                or_(
                    i.c.state == ItemState.QUEUED.value,
                    (i.c.state == ItemState.SENDING.value) & (i.c.sent_at < stale_before),
                ),
            ),
            10_000,
        )
        return found[-1] if found else None

    def alerts_for_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Alerts already sent under these idempotency keys: key → (alert id, status)."""
        if not keys:
            return {}
        a = t.alerts
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.idempotency_key, a.c.id, a.c.status).where(
                    a.c.idempotency_key.in_(list(keys))
                )
            )
            return {str(k): (int(i), str(s)) for k, i, s in rows}

    # -- pacing --------------------------------------------------------------------------------
    def claim_auto_gap(self, now: float, gap_s: float) -> bool:
        """Take the right to auto-send now: one row updated only if the gap has passed.

        One conditional UPDATE of a single row is atomic in SQLite and PostgreSQL alike (the
        second writer re-reads the row after the first commits), so two pollers never both win.
        """
        p = t.feed_pacing
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(p).values(id=_PACING_ROW, last_auto_at=None))
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            done = conn.execute(
                update(p)
                .where(
                    p.c.id == _PACING_ROW,
                    or_(p.c.last_auto_at.is_(None), p.c.last_auto_at <= now - gap_s),
                )
                .values(last_auto_at=now)
            )
            return done.rowcount == 1

    def last_auto_at(self) -> float | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.feed_pacing.c.last_auto_at).where(t.feed_pacing.c.id == _PACING_ROW)
            ).scalar_one_or_none()
            return None if found is None else float(found)
