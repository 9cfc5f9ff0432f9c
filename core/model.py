"""Domain records: subscriptions, alerts, batches and the delivery ledger's states."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Urgency(enum.StrEnum):
    VERY_LOW = "very-low"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class AlertStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in {AlertStatus.SENT, AlertStatus.CANCELLED, AlertStatus.FAILED}


class AlertKind(enum.StrEnum):
    NORMAL = "normal"
    TEST = "test"
    CORRECTION = "correction"
    STORY = "story"  # opens a followable story: the usual audience, plus a Follow button
    UPDATE = "update"  # an update to a story: its followers only


class Lane(enum.StrEnum):
    """Celery queues; breaking news has its own so a routine send never delays it."""

    BREAKING = "newsflash.breaking"
    ROUTINE = "newsflash.routine"
    MAINTENANCE = "newsflash.maintenance"


class LossReason(enum.StrEnum):
    """Why a subscription was deleted (counted per hour for the audience-health view)."""

    UNSUBSCRIBED = "unsubscribed"  # the reader (or their browser) asked
    GONE = "gone"  # the push service answered 404/410
    PURGED = "purged"  # not seen for subscription_max_age_days
    # A renewal merged the reader's old row into a new one that had signed up afresh (a gain
    # then); a renewal onto a new row is the same reader, neither lost nor gained.
    MOVED = "moved"
    UNKNOWN = "unknown"  # deleted before reasons were recorded


class LedgerStatus(enum.IntEnum):
    """One row per (alert, subscription) once a push was attempted."""

    DELIVERED = 1
    GONE = 2
    FAILED = 3
    RETRY = 4  # waiting in the database until next_attempt_at
    REQUEUED = 5  # picked by the retry scheduler into a retry batch
    HELD = 6  # the reader's quiet hours: waits until next_attempt_at (their end)
    EXPIRED = 7  # held, but the alert's TTL ran out before the quiet hours ended
    CAPPED = 8  # skipped: the reader's daily cap was reached

    @property
    def final(self) -> bool:
        return self in FINAL_LEDGER_STATUSES


FINAL_LEDGER_STATUSES = frozenset(
    {
        LedgerStatus.DELIVERED,
        LedgerStatus.GONE,
        LedgerStatus.FAILED,
        LedgerStatus.EXPIRED,
        LedgerStatus.CAPPED,
    }
)


class BatchStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class SubscriptionInput:
    endpoint: str
    p256dh: str
    auth: str
    topics: tuple[str, ...]
    expiration_time: float | None = None
    lang: str | None = None  # the reader's language (en, sw); None keeps the stored one
    platform: str | None = None  # android, ios, desktop as the widget saw it; None keeps it
    new_lang: str = "en"  # stored for a new subscription that names no lang (the default)


@dataclass(frozen=True)
class Subscription:
    id: int
    endpoint: str
    p256dh: str
    auth: str
    topics: tuple[str, ...]
    created_at: float
    last_seen_at: float
    test_device_user_id: int | None = None
    lang: str = "en"
    platform: str | None = None


@dataclass(frozen=True)
class Translation:
    """An alert's title and body in one more language (the alert's own text is its main one)."""

    lang: str
    title: str
    body: str


@dataclass(frozen=True)
class AlertDraft:
    """A validated request to publish; nothing stored yet."""

    title: str
    body: str
    url: str
    topics: tuple[str, ...]
    urgency: Urgency
    ttl_s: int
    image: str | None = None
    icon: str | None = None
    article_id: str | None = None
    idempotency_key: str | None = None
    send_at: float | None = None
    kind: AlertKind = AlertKind.NORMAL
    corrects_id: int | None = None
    created_by: str | None = None
    test_user_id: int | None = None
    lang: str | None = None  # the language title and body are in; None: NEWSFLASH_DEFAULT_LANG
    translations: tuple[Translation, ...] = ()
    utm: bool = True  # click-through URL tagged for the publisher's analytics (core/utm.py)


@dataclass(frozen=True)
class AlertCounts:
    audience: int = 0
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    displayed: int = 0
    clicked: int = 0
    held: int = 0
    released: int = 0
    capped: int = 0
    expired: int = 0

    @property
    def pending(self) -> int:
        return max(0, self.audience - self.delivered - self.gone - self.failed - self.expired)


@dataclass(frozen=True)
class Alert:
    id: int
    title: str
    body: str
    url: str
    topics: tuple[str, ...]
    urgency: Urgency
    ttl_s: int
    story_key: str
    status: AlertStatus
    kind: AlertKind
    created_at: float
    image: str | None = None
    icon: str | None = None
    article_id: str | None = None
    send_at: float | None = None
    corrects_id: int | None = None
    created_by: str | None = None
    test_user_id: int | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    cancelled_at: float | None = None
    planned: bool = False
    counts: AlertCounts = field(default_factory=AlertCounts)
    lang: str | None = None  # the language title and body are in; None: NEWSFLASH_DEFAULT_LANG
    translations: tuple[Translation, ...] = ()
    utm: bool = True  # click-through URL tagged for the publisher's analytics (core/utm.py)

    def text_in(self, lang: str, default_lang: str) -> Translation:
        """The words a reader of `lang` gets: theirs if written, else the alert's main ones."""
        for t in self.translations:
            if t.lang == lang:
                return t
        return Translation(self.lang or default_lang, self.title, self.body)

    @property
    def lane(self) -> Lane:
        if "breaking" in self.topics or self.urgency is Urgency.HIGH:
            return Lane.BREAKING
        return Lane.ROUTINE


@dataclass(frozen=True)
class Batch:
    id: int
    alert_id: int
    seq: int
    subscription_ids: tuple[int, ...]
    status: BatchStatus


@dataclass(frozen=True)
class Target:
    """One subscription to push to within a batch, with its ledger state if any."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    topic_mask: int
    attempts: int = 0
    lang: str | None = None  # the reader's language; None: NEWSFLASH_DEFAULT_LANG
