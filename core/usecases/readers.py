"""The Readers use cases: subscribe, change or move a subscription, unsubscribe, report a display."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from core import subscriptions as subs
from core.endpoints import EndpointPolicy
from core.errors import ValidationError
from core.inputs import parse_id
from core.model import Subscription, SubscriptionInput
from core.ports import SubscriptionStore
from core.quiet import ReaderPreferences, parse_preferences
from core.receipts import RECEIPT_FIELD, EventResult, EventStore, Receipts, record_event
from core.tombstones import TombstoneStore

DAY_S = 86400.0

MAX_ENDPOINT = 2048
MAX_AUTH = 64
EVENT_KINDS = ("displayed", "clicked")


class PreferenceStore(Protocol):
    def get_preferences(self, subscription_id: int) -> ReaderPreferences: ...
    def set_preferences(
        self, subscription_id: int, prefs: ReaderPreferences, *, lang: str | None = None
    ) -> bool: ...


@dataclass(frozen=True)
class ReaderRules:
    """What a subscription may hold, from the settings."""

    endpoints: EndpointPolicy
    topics: frozenset[str]
    default_topics: tuple[str, ...]
    default_lang: str = "en"  # NEWSFLASH_DEFAULT_LANG: a new reader who names no language
    tombstone_days: float = 30  # NEWSFLASH_TOMBSTONE_DAYS: a gone reader's move restores them


class Readers:
    """What a reader's browser does; a subscription is only ever touched with its auth secret."""

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        events: EventStore,
        receipts: Receipts | None,
        rules: ReaderRules,
        clock: Callable[[], float] = time.time,
        preferences: PreferenceStore | None = None,
        tombstones: TombstoneStore | None = None,
    ) -> None:
        self.preferences_store = preferences
        self.tombstones = tombstones
        self.subscriptions = subscriptions
        self.events = events
        self.receipts = receipts
        self.rules = rules
        self.clock = clock

    def _parse(
        self, body: object, *, default_topics: bool = True, prefix: str = ""
    ) -> SubscriptionInput:
        parsed = subs.parse_subscription(
            body,
            self.rules.endpoints,
            self.rules.topics,
            self.rules.default_topics if default_topics else (),
            prefix,
        )
        return replace(parsed, new_lang=self.rules.default_lang)

    def subscribe(self, body: object) -> tuple[Subscription, bool]:
        """Opt in (or re-subscribe with the same keys). Returns (subscription, created).

        Without `topics` a stored subscription keeps its topics: that is the widget re-syncing
        on a later visit (which keeps the reader from being purged as stale), not a choice."""
        parsed = self._parse(body)
        if isinstance(body, Mapping) and "topics" not in body:
            stored = self.subscriptions.get_by_endpoint(parsed.endpoint)
            if stored is not None and stored.topics:
                # Other keys are refused by the upsert, so these topics are never echoed to them.
                parsed = replace(parsed, topics=tuple(stored.topics))
        return subs.record_opt_in(self.subscriptions, parsed, self.clock())

    def change_subscription(self, body: Mapping[str, Any]) -> Subscription:
        """Replace the topics of an owned subscription (the full new list) and, when the body
        names one, its language (checked as on subscribe; left out, the stored one stays)."""
        if "topics" not in body:
            raise ValidationError("topics is required: the full new list of topics", "topics")
        return subs.change_topics(self.subscriptions, self._parse(body), self.clock())

    def lookup(self, body: Mapping[str, Any]) -> Subscription:
        """Which topics this browser has (needs endpoint + auth)."""
        return subs.owned_subscription(self.subscriptions, *_proof(body, "endpoint", "auth"))

    def preferences(self, body: Mapping[str, Any]) -> ReaderPreferences:
        """This browser's quiet hours and daily cap (needs endpoint + auth)."""
        sub = subs.owned_subscription(self.subscriptions, *_proof(body, "endpoint", "auth"))
        assert self.preferences_store is not None
        return self.preferences_store.get_preferences(sub.id)

    def set_preferences(self, body: Mapping[str, Any]) -> ReaderPreferences:
        """Quiet hours and daily cap, with the same proof of ownership as a topic change, and
        the language when the body names one (the manage page saves in the language it is shown
        in, as a topic change does; left out, the stored one stays).

        Everything is validated before the row is found, and stored in one statement."""
        endpoint, auth = _proof(body, "endpoint", "auth")
        prefs = parse_preferences(body, self.clock())
        lang = subs.check_lang(body.get("lang"))
        sub = subs.owned_subscription(self.subscriptions, endpoint, auth)
        assert self.preferences_store is not None
        self.preferences_store.set_preferences(sub.id, prefs, lang=lang)
        return prefs

    def unsubscribe(self, body: Mapping[str, Any]) -> None:
        endpoint, auth = _proof(body, "endpoint", "auth")
        subs.remove_subscription(
            self.subscriptions, endpoint, auth, self.tombstones, self._gone_since()
        )

    def _gone_since(self) -> float:
        """Tombstones older than this restore nothing (retention deletes them soon after)."""
        return self.clock() - self.rules.tombstone_days * DAY_S

    def move(self, body: Mapping[str, Any]) -> tuple[Subscription, bool]:
        """pushsubscriptionchange: the reader keeps their topics and choices on the new endpoint."""
        old_endpoint, old_auth = _proof(body, "oldEndpoint", "oldAuth")
        new = body.get("subscription")
        if not isinstance(new, dict):
            raise ValidationError(
                "subscription must be the new PushSubscription object", "subscription"
            )
        parsed = self._parse(new, default_topics=False, prefix="subscription.")
        # The store moves quiet hours, the cap and followed stories in the move's transaction;
        # a subscription deleted as gone meanwhile is restored from its tombstone.
        return subs.move_subscription(
            self.subscriptions,
            old_endpoint,
            old_auth,
            parsed,
            self.clock(),
            self.tombstones,
            self._gone_since(),
        )

    def report_event(self, body: Mapping[str, Any]) -> EventResult:
        """A service worker reports a display or click, echoing the receipt its push carried."""
        kind = body.get("type")
        if kind not in EVENT_KINDS:
            raise ValidationError("type must be displayed or clicked", "type")
        alert_id = parse_id(body.get("alert"), "alert")
        receipt = body.get(RECEIPT_FIELD)
        if not isinstance(receipt, str) or not receipt:
            raise ValidationError(
                f"{RECEIPT_FIELD} is required: the receipt the push payload carried",
                RECEIPT_FIELD,
            )
        return record_event(self.events, self.receipts, alert_id, str(kind), receipt)


def _proof(body: Mapping[str, Any], endpoint: str, auth: str) -> tuple[str, str]:
    return (
        subs.require_str(body, endpoint, MAX_ENDPOINT),
        subs.require_str(body, auth, MAX_AUTH),
    )
