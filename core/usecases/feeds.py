"""The Feeds use cases: follow a feed, poll it (beat), turn new breaking items into drafts or sends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from core import feeds as rules
from core.alerts import AlertRules, check_public_url
from core.errors import DomainError, NotFound, ValidationError
from core.feeds import Feed, FeedInput, FeedItem, FeedMode, ItemState, ParsedItem
from core.ports import AuditLog
from core.usecases.newsroom import Editor, Newsroom

log = logging.getLogger("newsflash.feeds")

STALE_SENDING_S = 300.0


class FeedStore(Protocol):
    def list_feeds(self) -> list[Feed]: ...
    def get_feed(self, feed_id: int) -> Feed | None: ...
    def add_feed(self, feed: FeedInput, by: str | None, now: float) -> Feed: ...
    def set_mode(self, feed_id: int, mode: FeedMode) -> bool: ...
    def remove_feed(self, feed_id: int) -> bool: ...
    def due_feeds(self, now: float, limit: int) -> list[Feed]: ...
    def claim_poll(self, feed_id: int, seen_next: float, next_poll_at: float) -> bool: ...
    def record_ok(
        self, feed_id: int, now: float, etag: str | None, last_modified: str | None
    ) -> None: ...
    def record_error(self, feed_id: int, now: float, message: str) -> None: ...
    def add_items(
        self, feed_id: int, found: Sequence[tuple[ParsedItem, ItemState, str | None]], now: float
    ) -> list[FeedItem]: ...
    def get_item(self, item_id: int) -> FeedItem | None: ...
    def recent_items(self, states: Sequence[ItemState], limit: int = 50) -> list[FeedItem]: ...
    def set_item_state(
        self, item_id: int, state: ItemState, only_from: Sequence[ItemState], **values: object
    ) -> bool: ...
    def next_queued(self, stale_before: float) -> FeedItem | None: ...
    def alerts_for_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]: ...
    def claim_auto_gap(self, now: float, gap_s: float) -> bool: ...


class FeedFetcher(Protocol):
    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        field: str = "url",
    ) -> object: ...


@dataclass(frozen=True)
class FeedPolicy:
    poll_interval_s: float = 60.0
    min_gap_s: float = 120.0
    per_round: int = 10


@dataclass(frozen=True)
class PollResult:
    feed_id: int
    new: int = 0  # items that became drafts or were queued to send
    seen: int = 0  # recorded without an alert (first poll, or could not become one)
    not_modified: bool = False
    error: str | None = None


@dataclass(frozen=True)
class DraftView:
    item: FeedItem
    feed: Feed | None
    form: dict[str, object]


ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8"


class Feeds:
    """Feeds the newsroom follows; each method is one thing an editor, admin or beat does."""

    def __init__(
        self,
        store: FeedStore,
        fetcher: FeedFetcher,
        newsroom: Newsroom,
        audit: AuditLog,
        alert_rules: AlertRules,
        policy: FeedPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.newsroom = newsroom
        self.audit_log = audit
        self.rules = alert_rules
        self.policy = policy
        self.clock = clock

    # -- configuration (admins) --------------------------------------------------------------
    def feeds(self) -> list[Feed]:
        return self.store.list_feeds()

    def add(self, editor: Editor, body: Mapping[str, object]) -> Feed:
        given = rules.parse_feed_input(
            body, self.rules.public_origins, self.rules.topics, self.rules.default_topics
        )
        feed = self.store.add_feed(given, editor.name, self.clock())
        detail = {"url": feed.url, "category": feed.category, "mode": feed.mode.value}
        self.audit_log.audit(editor.name, "feed.add", str(feed.id), detail)
        return feed

    def set_mode(self, editor: Editor, feed_id: int, mode: str) -> Feed:
        try:
            chosen = FeedMode(mode)
        except ValueError:
            raise ValidationError("mode must be review or auto", "mode") from None
        if not self.store.set_mode(feed_id, chosen):
            raise NotFound("no such feed", "id")
        self.audit_log.audit(editor.name, "feed.mode", str(feed_id), {"mode": chosen.value})
        return self._feed(feed_id)

    def remove(self, editor: Editor, feed_id: int) -> None:
        feed = self._feed(feed_id)
        self.store.remove_feed(feed_id)
        self.audit_log.audit(editor.name, "feed.remove", str(feed_id), {"url": feed.url})

    def _feed(self, feed_id: int) -> Feed:
        found = self.store.get_feed(feed_id)
        if found is None:
            raise NotFound("no such feed", "id")
        return found

    # -- the "From your feed" list (editors) -------------------------------------------------
    def drafts(self, limit: int = 30) -> list[DraftView]:
        """Drafts waiting for an editor. One sent through the review page (its key is on an
        alert now) is marked sent here and moves to the recent list."""
        items = self.store.recent_items((ItemState.DRAFT,), limit)
        sent = self.store.alerts_for_keys([i.idempotency_key for i in items])
        for item in items:
            if item.idempotency_key in sent:
                alert_id = sent[item.idempotency_key][0]
                self.store.set_item_state(
                    item.id, ItemState.SENT, (ItemState.DRAFT,), alert_id=alert_id
                )
        feeds = {f.id: f for f in self.store.list_feeds()}
        return [
            DraftView(
                item,
                feeds.get(item.feed_id),
                rules.review_form(item, self._topics(feeds.get(item.feed_id))),
            )
            for item in items
            if item.idempotency_key not in sent
        ]

    def recent(self, limit: int = 20) -> list[FeedItem]:
        return self.store.recent_items(
            (ItemState.SENT, ItemState.QUEUED, ItemState.SENDING, ItemState.SKIPPED), limit
        )

    def dismiss(self, editor: Editor, item_id: int) -> None:
        item = self.store.get_item(item_id)
        if item is None:
            raise NotFound("no such feed item", "id")
        if not self.store.set_item_state(item_id, ItemState.DISMISSED, (ItemState.DRAFT,)):
            raise ValidationError("this item is no longer a draft", "id")
        self.audit_log.audit(editor.name, "feed.item.dismiss", str(item_id), {"title": item.title})

    def _topics(self, feed: Feed | None) -> tuple[str, ...]:
        return feed.topics if feed is not None else self.rules.default_topics

    # -- polling (beat, or "Poll now") --------------------------------------------------------
    def poll_due(self) -> list[PollResult]:
        """Every feed whose time has come, then at most one auto send (the gap allowing)."""
        now = self.clock()
        results = []
        for feed in self.store.due_feeds(now, self.policy.per_round):
            if self.store.claim_poll(feed.id, feed.next_poll_at, now + self.policy.poll_interval_s):
                results.append(self._poll(feed))
        self.send_queued()
        return results

    def poll(self, editor: Editor, feed_id: int) -> PollResult:
        """Poll one feed now (the page's "Poll now", `newsflash feeds poll`)."""
        feed = self._feed(feed_id)
        self.store.claim_poll(
            feed.id, feed.next_poll_at, self.clock() + self.policy.poll_interval_s
        )
        result = self._poll(feed)
        self.send_queued()
        return result

    def _poll(self, feed: Feed) -> PollResult:
        now = self.clock()
        try:
            fetched = self.fetcher.get(
                feed.url, etag=feed.etag, last_modified=feed.last_modified, accept=ACCEPT
            )
            status = getattr(fetched, "status", 200)
            if status == 304:
                self.store.record_ok(feed.id, now, None, None)
                return PollResult(feed.id, not_modified=True)
            parsed = rules.parse_feed(
                getattr(fetched, "body", b""), getattr(fetched, "content_type", None)
            )
        except DomainError as exc:
            message = f"The feed could not be read: {exc.message}"
            self.store.record_error(feed.id, now, message)
            log.warning("feed poll failed", extra={"feed_id": feed.id, "error": exc.message})
            return PollResult(feed.id, error=message)
        found = [
            self._classify(feed, item) for item in parsed if rules.matches(item, feed.category)
        ]
        added = self.store.add_items(feed.id, [f for f in found if f[0].key], now)
        self.store.record_ok(
            feed.id, now, getattr(fetched, "etag", None), getattr(fetched, "last_modified", None)
        )
        fresh = [i for i in added if i.state in (ItemState.DRAFT, ItemState.QUEUED)]
        if fresh:
            log.info("feed items", extra={"feed_id": feed.id, "new": len(fresh)})
        return PollResult(feed.id, new=len(fresh), seen=len(added) - len(fresh))

    def _classify(self, feed: Feed, item: ParsedItem) -> tuple[ParsedItem, ItemState, str | None]:
        if not feed.primed:
            # Already in the feed when it was added: recorded, never sent.
            return item, ItemState.SEEN, None
        try:
            check_public_url(item.link, self.rules.public_origins, "url")
        except ValidationError:
            return item, ItemState.SKIPPED, "its link is not on the publisher's origins"
        if not (item.title or item.summary):
            return item, ItemState.SKIPPED, "it has no title"
        return item, ItemState.QUEUED if feed.mode is FeedMode.AUTO else ItemState.DRAFT, None

    # -- auto sends ----------------------------------------------------------------------------
    def send_queued(self) -> int | None:
        """Send the oldest queued auto item if the minimum gap has passed; its alert id."""
        now = self.clock()
        item = self.store.next_queued(now - STALE_SENDING_S)
        if item is None or not self.store.claim_auto_gap(now, self.policy.min_gap_s):
            return None
        if not self.store.set_item_state(
            item.id, ItemState.SENDING, (ItemState.QUEUED, ItemState.SENDING), sent_at=now
        ):
            return None
        feed = self.store.get_feed(item.feed_id)
        try:
            published = self.newsroom.publish(
                Editor(rules.FEED_ACTOR),
                rules.alert_request(item, self._topics(feed)),
                idempotency_key=item.idempotency_key,
            )
        except DomainError as exc:
            self.store.set_item_state(
                item.id, ItemState.SKIPPED, (ItemState.SENDING,), note=exc.message[:300]
            )
            return None
        self.store.set_item_state(
            item.id, ItemState.SENT, (ItemState.SENDING,), alert_id=published.alert.id
        )
        return published.alert.id
