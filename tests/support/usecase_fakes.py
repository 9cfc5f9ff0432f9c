"""In-memory fakes of the ports the use cases take: stores, queue, audit log and a clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.alerts import AlertRules
from core.base64url import b64url_encode
from core.corrections import STOPPABLE
from core.endpoints import EndpointPolicy
from core.model import (
    Alert,
    AlertDraft,
    AlertKind,
    AlertStatus,
    Lane,
    Subscription,
    SubscriptionInput,
)
from core.receipts import EventResult, Receipts
from core.usecases.newsroom import Newsroom
from core.usecases.readers import ReaderRules

ORIGIN = "https://news.example"
RULES = AlertRules(
    public_origins=(ORIGIN,),
    topics=frozenset({"breaking", "politics"}),
    default_topics=("breaking",),
    default_ttl_s=3600,
)


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeAlerts:
    """AlertStore: alerts by id, idempotent by article_id and key like the SQL store."""

    alerts: dict[int, Alert] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)

    def create_alert(
        self,
        draft: AlertDraft,
        story_key: str,
        status: AlertStatus,
        audience: int,
        now: float,
        *,
        stops: int | None = None,
    ) -> tuple[Alert, bool]:
        found = self.find_alert(article_id=draft.article_id, idempotency_key=draft.idempotency_key)
        if found is not None:
            return found, False
        alert = Alert(
            id=len(self.alerts) + 1,
            title=draft.title,
            body=draft.body,
            url=draft.url,
            topics=draft.topics,
            urgency=draft.urgency,
            ttl_s=draft.ttl_s,
            story_key=story_key,
            status=status,
            kind=draft.kind,
            created_at=now,
            image=draft.image,
            article_id=draft.article_id,
            send_at=draft.send_at,
            corrects_id=draft.corrects_id,
            created_by=draft.created_by,
            test_user_id=draft.test_user_id,
            queued_at=now if status is AlertStatus.QUEUED else None,
        )
        self.alerts[alert.id] = alert
        if draft.idempotency_key:
            self.keys[draft.idempotency_key] = alert.id
        if stops is not None:  # in the same transaction, in the SQL store
            self.stop_if_going_out(stops, now)
        return alert, True

    def stop_if_going_out(self, alert_id: int, now: float) -> None:
        """A correction takes the alert over: cancelled if still queued or sending."""
        alert = self.alerts.get(alert_id)
        if alert is not None and alert.kind is not AlertKind.TEST and alert.status in STOPPABLE:
            self.alerts[alert_id] = replace(
                alert, status=AlertStatus.CANCELLED, cancelled_at=now, finished_at=now
            )

    def get_alert(self, alert_id: int) -> Alert | None:
        return self.alerts.get(alert_id)

    def find_alert(self, *, article_id: str | None, idempotency_key: str | None) -> Alert | None:
        for alert in self.alerts.values():
            if article_id is not None and alert.article_id == article_id:
                return alert
        key_id = self.keys.get(idempotency_key) if idempotency_key else None
        return None if key_id is None else self.alerts[key_id]

    def set_status(
        self,
        alert_id: int,
        status: AlertStatus,
        now: float,
        *,
        only_from: Sequence[AlertStatus] = (),
    ) -> bool:
        alert = self.alerts[alert_id]
        if only_from and alert.status not in only_from:
            return False
        cancelled_at = now if status is AlertStatus.CANCELLED else alert.cancelled_at
        self.alerts[alert_id] = replace(alert, status=status, cancelled_at=cancelled_at)
        return True

    def is_stopped(self, alert_id: int) -> bool:
        return self.alerts[alert_id].status is AlertStatus.CANCELLED

    def alerts_since(self, since: float, limit: int) -> list[Alert]:
        found = [a for a in self.alerts.values() if a.created_at >= since and a.kind != "test"]
        return sorted(found, key=lambda a: (a.created_at, a.id), reverse=True)[:limit]

    def put(self, alert: Alert) -> Alert:
        self.alerts[alert.id] = alert
        return alert


@dataclass
class FakeSubscriptions:
    """SubscriptionStore: rows by id; the audience is every row with a chosen topic."""

    rows: dict[int, Subscription] = field(default_factory=dict)
    test_devices: dict[int, int] = field(default_factory=dict)  # subscription id -> user id

    def upsert(self, sub: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        found = self.get_by_endpoint(sub.endpoint)
        if found is not None:
            row = replace(found, topics=sub.topics, last_seen_at=now)
            self.rows[row.id] = row
            return row, False
        row = Subscription(
            len(self.rows) + 1, sub.endpoint, sub.p256dh, sub.auth, sub.topics, now, now
        )
        self.rows[row.id] = row
        return row, True

    def get_by_endpoint(self, endpoint: str) -> Subscription | None:
        return next((r for r in self.rows.values() if r.endpoint == endpoint), None)

    def set_topics(
        self, sub_id: int, topics: Sequence[str], now: float, *, lang: str | None = None
    ) -> Subscription:
        row = self.rows[sub_id]
        self.rows[sub_id] = replace(row, topics=tuple(topics), lang=lang or row.lang)
        return self.rows[sub_id]

    def replace(self, old_id: int, new: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        del self.rows[old_id]
        return self.upsert(new, now)

    def delete_ids(self, ids: Iterable[int]) -> int:
        gone = [i for i in ids if self.rows.pop(i, None) is not None]
        return len(gone)

    def audience_size(self, topics: Sequence[str]) -> int:
        return sum(1 for r in self.rows.values() if set(r.topics) & set(topics))

    def set_test_device(self, sub_id: int, user_id: int | None) -> None:
        if user_id is None:
            self.test_devices.pop(sub_id, None)
        else:
            self.test_devices[sub_id] = user_id


@dataclass
class FakeQueue:
    plans: list[int] = field(default_factory=list)

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None:
        self.plans.append(alert_id)

    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None:
        raise AssertionError("the newsroom never enqueues batches")


@dataclass
class FakeNewsroomStore:
    subscriptions: FakeSubscriptions
    alerts: FakeAlerts
    webhooks: set[str] = field(default_factory=set)

    def edit_scheduled(self, alert_id: int, draft: AlertDraft, article_id: str | None) -> bool:
        alert = self.alerts.alerts[alert_id]
        if alert.status is not AlertStatus.SCHEDULED:
            return False
        self.alerts.put(replace(alert, title=draft.title, send_at=draft.send_at))
        return True

    def set_test_device(self, sub_id: int, user_id: int | None) -> None:
        self.subscriptions.set_test_device(sub_id, user_id)

    def corrections_of(self, alert_id: int) -> list[Alert]:
        return sorted(
            (a for a in self.alerts.alerts.values() if a.corrects_id == alert_id),
            key=lambda a: a.id,
        )

    def test_device_count(self, user_id: int) -> int:
        return sum(1 for u in self.subscriptions.test_devices.values() if u == user_id)

    def record_webhook(self, webhook_id: str, now: float, keep_s: float) -> bool:
        if webhook_id in self.webhooks:
            return False
        self.webhooks.add(webhook_id)
        return True

    def forget_webhook(self, webhook_id: str) -> None:
        self.webhooks.discard(webhook_id)


@dataclass
class FakeAudit:
    rows: list[tuple[str | None, str, str | None, dict[str, Any]]] = field(default_factory=list)

    def audit(
        self,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.rows.append((actor, action, target, detail or {}))

    def actions(self) -> list[str]:
        return [row[1] for row in self.rows]


@dataclass
class NewsroomKit:
    """A Newsroom on fakes, with the fakes at hand for the test to look into."""

    alerts: FakeAlerts = field(default_factory=FakeAlerts)
    subscriptions: FakeSubscriptions = field(default_factory=FakeSubscriptions)
    queue: FakeQueue = field(default_factory=FakeQueue)
    audit: FakeAudit = field(default_factory=FakeAudit)
    clock: Clock = field(default_factory=Clock)
    undo_window_s: int = 10
    duplicate_window_s: int = 0

    def __post_init__(self) -> None:
        self.store = FakeNewsroomStore(self.subscriptions, self.alerts)
        self.room = Newsroom(
            self.alerts,
            self.subscriptions,
            self.queue,
            self.store,
            self.audit,
            RULES,
            self.undo_window_s,
            clock=self.clock,
            recent=self.alerts,
            duplicate_window_s=self.duplicate_window_s,
        )


# -- readers ----------------------------------------------------------------------------------
PUSH = "https://push.example.net/send/"
READER_RULES = ReaderRules(
    endpoints=EndpointPolicy(("push.example.net",)),
    topics=frozenset({"breaking", "sport"}),
    default_topics=("breaking",),
)
RECEIPTS = Receipts(b"k" * 32)


@dataclass
class FakeEvents:
    counted: list[tuple[int, int, str]] = field(default_factory=list)

    def count_event(self, alert_id: int, subscription_id: int, kind: str) -> EventResult:
        self.counted.append((alert_id, subscription_id, kind))
        return EventResult.COUNTED


def browser_json(name: str) -> dict[str, object]:
    """A PushSubscription's JSON as a browser sends it: a fresh P-256 key, an auth secret
    spelling `name` (so a test can tell readers apart), an endpoint on PUSH."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    keys = {"p256dh": b64url_encode(point), "auth": b64url_encode(name.encode().ljust(16, b"."))}
    return {"endpoint": PUSH + name, "keys": keys}
