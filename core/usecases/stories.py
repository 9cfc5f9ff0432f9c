"""The Stories use cases: editors update and close followable stories, readers follow them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from core import alerts as alert_rules
from core import stories as rules
from core import subscriptions as subs
from core.errors import Conflict, NotFound, ValidationError
from core.model import Alert, AlertKind
from core.ports import AlertStore, AuditLog, SubscriptionStore, TaskQueue
from core.stories import Story, StoryStore
from core.usecases.newsroom import Editor

MAX_ENDPOINT = 2048
MAX_AUTH = 64


class Stories:
    """Followable stories: updates reach followers only, with the story's tag and Topic."""

    def __init__(
        self,
        stories: StoryStore,
        alerts: AlertStore,
        subscriptions: SubscriptionStore,
        queue: TaskQueue,
        audit: AuditLog,
        alert_rules: alert_rules.AlertRules,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stories = stories
        self.alerts = alerts
        self.subscriptions = subscriptions
        self.queue = queue
        self.audit_log = audit
        self.rules = alert_rules
        self.clock = clock

    # -- editors -----------------------------------------------------------------------------
    def all(self, limit: int = 100) -> list[Story]:
        return self.stories.list_stories(limit)

    def story(self, key: str) -> Story:
        found = self.stories.get_story(rules.parse_key(key))
        if found is None:
            raise NotFound("no such story", "story")
        return found

    def post_update(
        self, editor: Editor, key: str, body: object, idempotency_key: str | None = None
    ) -> Alert:
        """A new alert on the story to its followers; it replaces the last one on their screens.

        The same `idempotency_key` again returns the first update and sends nothing.
        """
        now = self.clock()
        story = rules.open_story_or_refuse(self.stories, key, now)
        if not isinstance(body, Mapping):
            raise ValidationError("body must be a JSON object")
        earlier = alert_rules.earlier_send(
            self.alerts,
            idempotency_key,
            lambda found: (
                found.kind is AlertKind.UPDATE
                and found.story_key == story.key
                and alert_rules.same_words(found, body)
            ),
        )
        if earlier is not None:
            return earlier
        founding = self.alerts.get_alert(story.alert_id)
        merged: dict[str, Any] = {"url": story.url, **body}
        # Followers chose the story, not a topic: the founding alert's topics only label it.
        merged["topics"] = list(founding.topics) if founding else list(self.rules.default_topics)
        if "followable" in merged:
            raise ValidationError("an update cannot open another story", "followable")
        draft = alert_rules.parse_alert_request(
            merged, self.rules, now, idempotency_key=idempotency_key, created_by=editor.name
        )
        if draft.send_at is not None:
            raise ValidationError("story updates go out now; send_at is not allowed", "send_at")
        draft = replace(draft, kind=AlertKind.UPDATE, article_id=None)
        alert, created = alert_rules.publish(
            draft, self.alerts, self.subscriptions, self.queue, now, story=story.key
        )
        if not created:
            return alert
        self.audit_log.audit(
            editor.name, "story.update", str(alert.id), {"story": story.key, "title": alert.title}
        )
        return alert

    def close(self, editor: Editor, key: str) -> Story:
        story = self.story(key)
        if not self.stories.close_story(story.key, self.clock()):
            raise Conflict("this story is already closed", "story")
        self.audit_log.audit(editor.name, "story.close", story.key, {"followers": story.followers})
        return self.story(key)

    # -- readers -----------------------------------------------------------------------------
    def follow(self, key: str, body: Mapping[str, Any]) -> Story:
        """A reader's browser follows a story, proving the subscription is its own."""
        now = self.clock()
        story = rules.open_story_or_refuse(self.stories, key, now)
        sub = subs.owned_subscription(self.subscriptions, *_proof(body))
        if not self.stories.follow(story.key, sub.id, now, rules.MAX_FOLLOWED):
            raise Conflict(
                f"this browser already follows {rules.MAX_FOLLOWED} stories; unfollow one first",
                "story",
            )
        return story

    def unfollow(self, key: str, body: Mapping[str, Any]) -> None:
        sub = subs.owned_subscription(self.subscriptions, *_proof(body))
        self.stories.unfollow(rules.parse_key(key), sub.id)

    def open_stories(self, limit: int = 20) -> list[Story]:
        """What a reader may follow now (the manage page lists them)."""
        return self.stories.open_stories(self.clock(), limit)

    def followed(self, body: Mapping[str, Any]) -> list[Story]:
        sub = subs.owned_subscription(self.subscriptions, *_proof(body))
        return self.stories.followed(sub.id)


def _proof(body: Mapping[str, Any]) -> tuple[str, str]:
    return (
        subs.require_str(body, "endpoint", MAX_ENDPOINT),
        subs.require_str(body, "auth", MAX_AUTH),
    )
