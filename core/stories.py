"""Followable stories: an editor opens one with an alert, readers follow it, updates reach only them.

A story is named by the founding alert's story key (the notification tag and the push Topic), so
every update replaces the previous one on the reader's screen and, if still undelivered, at the
push service. A story is open until an editor closes it or `story_open_days` pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from core.errors import Conflict, NotFound, ValidationError
from core.model import AlertDraft, AlertKind

_KEY = re.compile(r"^nf[0-9a-f]{30}$")
MAX_FOLLOWED: Final = 50  # stories one browser may follow at once (an outsider cannot flood rows)


@dataclass(frozen=True)
class Story:
    key: str
    title: str
    url: str
    alert_id: int
    created_at: float
    closes_at: float
    closed_at: float | None = None
    followers: int = 0
    updates: int = 0
    # The founding alert's language (None: the newsroom's default) and its title in each other
    # language it was written in: a Kiswahili reader sees the story by its Kiswahili title.
    lang: str | None = None
    translated: Mapping[str, str] = field(default_factory=dict)

    def titles(self, default_lang: str) -> dict[str, str]:
        """The story's title in each language it has."""
        main = self.lang or default_lang
        return {main: self.title, **{k: v for k, v in self.translated.items() if k != main}}

    def is_open(self, now: float) -> bool:
        return self.closed_at is None and now < self.closes_at

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "url": self.url,
            "alert": str(self.alert_id),
            "open": self.is_open(now),
            "followers": self.followers,
            "updates": self.updates,
            "created_at": self.created_at,
            "closes_at": self.closed_at if self.closed_at is not None else self.closes_at,
        }

    def public_json(self, now: float, default_lang: str) -> dict[str, Any]:
        """What any page may read: `title` in the main language `lang`, `titles` by language."""
        return {
            "key": self.key,
            "title": self.title,
            "lang": self.lang or default_lang,
            "titles": self.titles(default_lang),
            "open": self.is_open(now),
        }


class StoryStore(Protocol):
    def open_story(
        self, key: str, title: str, url: str, alert_id: int, now: float, closes_at: float
    ) -> Story: ...
    def get_story(self, key: str) -> Story | None: ...
    def list_stories(self, limit: int) -> list[Story]: ...
    def open_stories(self, now: float, limit: int) -> list[Story]: ...
    def close_story(self, key: str, now: float) -> bool: ...
    def follow(self, key: str, subscription_id: int, now: float, limit: int) -> bool: ...
    def unfollow(self, key: str, subscription_id: int) -> bool: ...
    def followed(self, subscription_id: int) -> list[Story]: ...


def parse_key(value: object, field: str = "story") -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValidationError(f"{field} must be a story key (nf and 30 hex digits)", field)
    return value


def open_story_or_refuse(store: StoryStore, key: str, now: float) -> Story:
    """The story, if it exists and still takes updates or followers."""
    story = store.get_story(parse_key(key))
    if story is None:
        raise NotFound("no such story", "story")
    if not story.is_open(now):
        raise Conflict("this story is closed", "story")
    return story


def mark_followable(draft: AlertDraft, body: object) -> AlertDraft:
    """`"followable": true` on a new alert opens a story with it (a developing story, a match)."""
    value = body.get("followable") if isinstance(body, Mapping) else None
    if value is None or value is False:
        return draft
    if value is not True:
        raise ValidationError("followable must be true or false", "followable")
    if draft.kind is not AlertKind.NORMAL:
        raise ValidationError("only a new alert to readers can open a story", "followable")
    return replace(draft, kind=AlertKind.STORY)
