"""Followable stories and their followers (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Select,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.model import AlertKind, AlertStatus
from core.stories import Story
from core.translations import translations_from_json


def _titles(stored: str | None) -> dict[str, str]:
    """The founding alert's title in each of its other languages (its stored translations)."""
    if not stored:
        return {}
    return {t.lang: t.title for t in translations_from_json(json.loads(stored)) if t.title}


# A correction names the story once it is going out: one in its undo window (scheduled) or
# undone (cancelled) does not.
_NAMING = (AlertStatus.QUEUED.value, AlertStatus.SENDING.value, AlertStatus.SENT.value)


class SqlStories:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _select(self) -> Select[Any]:
        st, f, a = t.stories, t.story_follows, t.alerts
        followers = (
            select(func.count())
            .select_from(f.join(t.subscriptions, t.subscriptions.c.id == f.c.subscription_id))
            .where(f.c.story_key == st.c.key)
            .scalar_subquery()
        )
        updates = (
            select(func.count())
            .where(a.c.story_key == st.c.key, a.c.kind == AlertKind.UPDATE.value)
            .scalar_subquery()
        )
        founding = a.alias("founding")  # the alert that opened the story: its languages
        return select(
            st,
            followers.label("followers"),
            updates.label("updates"),
            founding.c.lang.label("founding_lang"),
            founding.c.translations.label("translations"),
        ).select_from(st.outerjoin(founding, founding.c.id == st.c.alert_id))

    def _stories(self, conn: Connection, rows: list[RowMapping]) -> list[Story]:
        """Each story by the words its readers were last sent for its founding alert: the newest
        correction going out in the founding alert's chain (corrections of corrections too),
        else the founding alert's own. A correction of an update does not rename the story."""
        named = self._corrected(conn, [int(r["alert_id"]) for r in rows])
        return [self._story(r, named.get(int(r["alert_id"]))) for r in rows]

    @staticmethod
    def _corrected(conn: Connection, roots: list[int]) -> dict[int, RowMapping]:
        """Founding alert id -> the newest naming correction in its chain (one query)."""
        if not roots:
            return {}
        a = t.alerts
        chain = (
            select(a.c.id.label("root"), a.c.id.label("id"))
            .where(a.c.id.in_(roots))
            .cte("chain", recursive=True)
        )
        below = a.alias("below")
        chain = chain.union_all(
            select(chain.c.root, below.c.id).where(below.c.corrects_id == chain.c.id)
        )
        rows = conn.execute(
            select(chain.c.root, a.c.title, a.c.url, a.c.lang, a.c.translations)
            .join(a, a.c.id == chain.c.id)
            .where(a.c.kind == AlertKind.CORRECTION.value, a.c.status.in_(_NAMING))
            .order_by(a.c.id)
        ).mappings()
        return {int(r["root"]): r for r in rows}  # the newest wins

    @staticmethod
    def _story(r: RowMapping, corrected: RowMapping | None = None) -> Story:
        words = corrected or {
            "title": r["title"],
            "url": r["url"],
            "lang": r["founding_lang"],
            "translations": r["translations"],
        }
        return Story(
            key=r["key"],
            title=words["title"],
            url=words["url"],
            alert_id=int(r["alert_id"]),
            created_at=float(r["created_at"]),
            closes_at=float(r["closes_at"]),
            closed_at=None if r["closed_at"] is None else float(r["closed_at"]),
            followers=int(r["followers"] or 0),
            updates=int(r["updates"] or 0),
            lang=words["lang"],
            translated=_titles(words["translations"]),
        )

    def open_story(
        self, key: str, title: str, url: str, alert_id: int, now: float, closes_at: float
    ) -> Story:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.stories).values(
                        key=key,
                        title=title,
                        url=url,
                        alert_id=alert_id,
                        created_at=now,
                        closes_at=closes_at,
                    )
                )
        except IntegrityError:
            pass  # the same story again (an idempotent publish): keep the first
        story = self.get_story(key)
        assert story is not None
        return story

    def get_story(self, key: str) -> Story | None:
        with self.engine.connect() as conn:
            rows = list(conn.execute(self._select().where(t.stories.c.key == key)).mappings())
            return self._stories(conn, rows)[0] if rows else None

    def list_stories(self, limit: int) -> list[Story]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select().order_by(t.stories.c.created_at.desc()).limit(limit)
            ).mappings()
            return self._stories(conn, list(rows))

    def open_stories(self, now: float, limit: int) -> list[Story]:
        st = t.stories
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select()
                .where(st.c.closed_at.is_(None), st.c.closes_at > now)
                .order_by(st.c.created_at.desc())
                .limit(limit)
            ).mappings()
            return self._stories(conn, list(rows))

    def close_story(self, key: str, now: float) -> bool:
        st = t.stories
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(st)
                    .where(st.c.key == key, st.c.closed_at.is_(None))
                    .values(closed_at=now)
                ).rowcount
                == 1
            )

    def follow(self, key: str, subscription_id: int, now: float, limit: int) -> bool:
        """False when this browser already follows `limit` stories (nothing stored)."""
        f = t.story_follows
        with self.engine.begin() as conn:
            already = conn.execute(
                select(func.count()).where(f.c.subscription_id == subscription_id)
            ).scalar_one()
            if already >= limit:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(f).values(
                            story_key=key, subscription_id=subscription_id, created_at=now
                        )
                    )
            except IntegrityError:
                pass  # following twice is following
        return True

    def unfollow(self, key: str, subscription_id: int) -> bool:
        f = t.story_follows
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    delete(f).where(f.c.story_key == key, f.c.subscription_id == subscription_id)
                ).rowcount
                == 1
            )

    def followed(self, subscription_id: int) -> list[Story]:
        f = t.story_follows
        keys = select(f.c.story_key).where(f.c.subscription_id == subscription_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._select()
                .where(t.stories.c.key.in_(keys))
                .order_by(t.stories.c.created_at.desc())
            ).mappings()
            return self._stories(conn, list(rows))
