"""Weeks of sends, displays, clicks, 410s, unsubscribes and renewals written through the store
adapter with a chosen clock: the audience-health view's test data (no sleeping, no worker)."""

from __future__ import annotations

import base64
import os
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.adapters.stores_sql import SqlStores
from core.model import AlertDraft, AlertStatus, LedgerStatus, SubscriptionInput, Urgency
from core.ports import LedgerEntry
from core.tombstones import endpoint_digest

HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com")
READERS = 60


def week_start(now: float, tz: ZoneInfo, weeks_ago: int) -> float:
    """Monday 09:00 of a past newsroom week (sends from here for 7 days stay in that week)."""
    today = datetime.fromtimestamp(now, tz).date()
    monday = today - timedelta(days=today.weekday(), weeks=weeks_ago)
    return datetime(monday.year, monday.month, monday.day, 9, tzinfo=tz).timestamp()


def _reader(n: int) -> SubscriptionInput:
    auth = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    host = HOSTS[n % len(HOSTS)]
    return SubscriptionInput(f"https://{host}/push/{n}", "BAAA", auth, ("breaking",))


def _send_week(
    store: SqlStores,
    readers: dict[int, str],
    start: float,
    per_day: int,
    shown: float,
    clicked: float,
    gone: float,
    rng: random.Random,
) -> None:
    """`per_day` alerts a day for a week from `start` to every reader left."""
    shown_so_far = [0]
    for day in range(7):
        for k in range(per_day):
            at = start + day * 86400 + k * 3600
            draft = AlertDraft(
                title=f"Alert {int(at)}",
                body="River levels are rising.",
                url="https://news.example.com/a",
                topics=("breaking",),
                urgency=Urgency.HIGH,
                ttl_s=600,
            )
            alert, _ = store.alerts.create_alert(
                draft, f"s{int(at)}", AlertStatus.SENDING, len(readers), at
            )
            entries, gone_ids = [], []
            for sid, host in readers.items():
                if rng.random() < gone:
                    entries.append(LedgerEntry(sid, LedgerStatus.GONE, 410, 1, push_host=host))
                    gone_ids.append(sid)
                else:
                    entries.append(LedgerEntry(sid, LedgerStatus.DELIVERED, 201, 1, push_host=host))
            store.ledger.record(alert.id, entries, gone_ids, at + 5)
            for sid in gone_ids:
                readers.pop(sid)
            for e in entries:
                if e.status is LedgerStatus.DELIVERED and rng.random() < shown:
                    store.events.count_event(alert.id, e.subscription_id, "displayed")
                    shown_so_far[0] += 1
                    if shown_so_far[0] % round(1 / clicked) == 0:
                        store.events.count_event(alert.id, e.subscription_id, "clicked")
            store.alerts.set_status(alert.id, AlertStatus.SENT, at + 60)


def seed_falling_engagement(store: SqlStores, now: float, tz: ZoneInfo) -> None:
    """Four weeks ago to last week: a steady alert a day clicked by 1 in 12, then three a day
    clicked by 1 in 60, with 410s starting; readers unsubscribe, stale ones are purged and a few
    browsers renew their subscriptions (some after a 410)."""
    # Thousands of small transactions. On SQLite (a connection per transaction) closing the last
    # connection checkpoints the WAL: one held open meanwhile halves the seeding (18 s to 9 s).
    with store.engine.connect():
        _seed_falling_engagement(store, now, tz)


def _seed_falling_engagement(store: SqlStores, now: float, tz: ZoneInfo) -> None:
    rng = random.Random(17)
    joined = week_start(now, tz, 4) - 3600
    readers = {}
    endpoints = {}
    for n in range(READERS):
        sub, _ = store.subscriptions.upsert(_reader(n), joined)
        readers[sub.id] = HOSTS[n % len(HOSTS)]
        endpoints[sub.id] = sub.endpoint
    stale = [
        store.subscriptions.upsert(_reader(1000 + n), now - 200 * 86400)[0].id for n in range(3)
    ]
    store.subscriptions.upsert(_reader(2000), now - 100 * 86400)
    assert stale
    for ago in (4, 3, 2):
        _send_week(store, readers, week_start(now, tz, ago), 1, 0.9, 1 / 12, 0.0, rng)
    last = week_start(now, tz, 1)
    _send_week(store, readers, last, 3, 0.9, 1 / 60, 0.03, rng)
    leaving = list(readers)[:4]
    store.subscriptions.delete_ids(leaving, now=last + 3 * 86400)
    store.subscriptions.purge_stale_subscriptions(now - 180 * 86400, now=last + 3 * 86400)
    renew(store, endpoints, list(readers)[4 : 4 + MOVED], last + 6 * 86400 + 6 * 3600)


MOVED, RESTORED = 3, 2  # last week's renewals


def renew(store: SqlStores, endpoints: dict[int, str], live: list[int], at: float) -> None:
    """Sunday afternoon: `MOVED` readers' browsers renew their subscriptions (a live move), and
    `RESTORED` readers a 410 removed come back from their tombstones."""
    for n, sid in enumerate(live):
        store.subscriptions.replace(sid, _reader(3000 + n), at)
    gone = [e for sid, e in endpoints.items() if store.subscriptions.get_subscription(sid) is None]
    restored = 0
    for n, endpoint in enumerate(gone):
        stone = store.subscriptions.find_tombstone(endpoint_digest(endpoint))
        if stone is not None and restored < RESTORED:
            store.subscriptions.restore(stone, _reader(4000 + n), at)
            restored += 1
    assert restored == RESTORED
