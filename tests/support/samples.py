"""Domain values tests share: an alert sent in Nairobi, and the topics, subscriptions and alert
drafts the store tests write."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from config.settings import Topic
from core.base64url import b64url_encode
from core.model import (
    Alert,
    AlertCounts,
    AlertDraft,
    AlertKind,
    AlertStatus,
    SubscriptionInput,
    Urgency,
)

NAIROBI = ZoneInfo("Africa/Nairobi")
NOW = datetime(2026, 11, 30, 19, 54, tzinfo=NAIROBI).timestamp()

ALERT = Alert(
    id=7,
    title="Floods close Thika road",
    body="Move to higher ground.",
    url="https://news.example/a",
    topics=("breaking",),
    urgency=Urgency.HIGH,
    ttl_s=3600,
    story_key="k",
    status=AlertStatus.SENT,
    kind=AlertKind.NORMAL,
    created_at=NOW,
    started_at=NOW,
    counts=AlertCounts(audience=12_400, delivered=12_000),
)


TOPICS = (
    Topic("breaking", "Breaking", True),
    Topic("politics", "Politics"),
    Topic("sport", "Sport"),
)


def sub(n: int, topics: Sequence[str] = ("breaking",)) -> SubscriptionInput:
    auth = b64url_encode(os.urandom(16))
    return SubscriptionInput(
        f"https://fcm.googleapis.com/fcm/send/{n}", "BAAA", auth, tuple(topics)
    )


def draft(topics: Sequence[str] = ("breaking",), **over: object) -> AlertDraft:
    base = dict(
        title="T",
        body="B",
        url="https://news.example.com/a",
        topics=tuple(topics),
        urgency=Urgency.HIGH,
        ttl_s=600,
    )
    base.update(over)
    return AlertDraft(**base)  # type: ignore[arg-type]
