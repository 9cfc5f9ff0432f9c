"""Freshest first on SQLite and PostgreSQL: pages come from the most recently seen readers down,
and every reader of the audience is planned exactly once (one plan batch, or one held, capped or
expired ledger row) while readers resubscribe, change topics and subscribe between pages, when
a planner is killed and resumes, and when two planners race in the final sweep."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, update

from core import delivery
from core.adapters import tables as t
from core.adapters.choices_sql import SqlReaderChoices
from core.adapters.planning_sql import SqlPlanning
from core.adapters.preferences_sql import SqlPreferences
from core.adapters.stores_sql import SqlStores
from core.choices import AudiencePage
from core.freshness import SWEEP, Cursor, sweep_since
from core.model import Alert, AlertStatus, LedgerStatus, Urgency
from core.ports import PlanningConflict
from core.quiet import QuietHours, ReaderPreferences, reader_day
from tests.support.fakes import FakeClock, FakeTaskQueue, RecordingQueue, WorkerKilled
from tests.support.samples import TOPICS, draft, sub

DAY_S = 86400.0
# 20:00 UTC is 23:00 in Nairobi: inside 22:00-06:00 there.
EVENING = datetime(2026, 6, 1, 20, 0, tzinfo=UTC).timestamp()
NAIROBI_NIGHT = QuietHours(22 * 60, 6 * 60, "Africa/Nairobi", 180)
POLICY = delivery.DeliveryPolicy(batch_size=4)
Life = Callable[[], None]


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


class BusyPlanning(SqlPlanning):
    """The real adapter; after each committed page, readers carry on living (`between`)."""

    between: Life | None = None

    def add_batch(
        self, alert_id: int, ids: Sequence[int], after: Cursor, last: Cursor, now: float
    ) -> int:
        batch = super().add_batch(alert_id, ids, after, last, now)
        if self.between is not None:
            self.between()
        return batch


class BusyChoices(SqlReaderChoices):
    between: Life | None = None

    def add_choice_page(
        self, alert: Alert, after: Cursor, page: AudiencePage, now: float
    ) -> int | None:
        batch = super().add_choice_page(alert, after, page, now)
        if self.between is not None:
            self.between()
        return batch


def planned_in_order(engine: Engine, alert_id: int) -> list[int]:
    b = t.batches
    with engine.connect() as conn:
        pages = conn.execute(
            select(b.c.subscription_ids)
            .where(b.c.alert_id == alert_id, b.c.kind == "plan")
            .order_by(b.c.seq)
        ).scalars()
        return [int(i) for page in pages for i in json.loads(page)]


def ledger(engine: Engine, alert_id: int) -> dict[int, int]:
    d = t.deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.subscription_id, d.c.status).where(d.c.alert_id == alert_id)
        ).all()
    return {int(s): int(st) for s, st in rows}


class Readers:
    """Subscribers seen at spread-out times, and what they do while an alert is planned."""

    def __init__(self, store: SqlStores, clock: FakeClock, topics: Sequence[str]) -> None:
        self.store, self.clock, self.topics = store, clock, tuple(topics)
        self.rng = random.Random(5)
        self.n = 0
        self.inputs: dict[int, object] = {}
        self.seen_at_start: dict[int, float] = {}
        self.moved: set[int] = set()  # seen again before the walk reached them
        self.joined: list[int] = []

    def add(self, seen: float, topics: Sequence[str] | None = None) -> int:
        self.n += 1
        given = sub(self.n, topics or self.topics)
        sid = self.store.subscriptions.upsert(given, seen)[0].id
        self.inputs[sid] = given
        return sid

    def seed(self, count: int) -> list[int]:
        ids = [self.add(self.clock() - self.rng.uniform(60, 90 * DAY_S)) for _ in range(count)]
        self.seen_at_start = {i: self._seen(i) for i in ids}
        return ids

    def _seen(self, sid: int) -> float:
        s = t.subscriptions
        with self.store.engine.connect() as conn:
            return float(conn.execute(select(s.c.last_seen_at).where(s.c.id == sid)).scalar_one())

    def live(self, alert_id: int, waiting: Callable[[], list[int]], rounds: int = 6) -> Life:
        """Between pages: two waiting readers resubscribe, a planned one changes topics, a
        reader of another topic joins this one, a new reader subscribes."""

        def between() -> None:
            if len(self.joined) >= 2 * rounds:
                return
            self.clock.advance(1.0)
            now = self.clock()
            left = [i for i in waiting() if i not in self.moved]
            for sid in self.rng.sample(left, min(2, len(left))):
                self.store.subscriptions.upsert(self.inputs[sid], now)  # type: ignore[arg-type]
                self.moved.add(sid)
            done = set(planned_in_order(self.store.engine, alert_id)) - self.moved
            if done:
                again = self.rng.choice(sorted(done))
                self.store.subscriptions.set_topics(again, self.topics, now)
            other = self.add(now, ["sport"])
            self.store.subscriptions.set_topics(other, [*self.topics, "sport"], now + 0.5)
            self.joined += [other, self.add(now + 0.5)]

        return between


def assert_freshest_first(order: list[int], readers: Readers, held: Sequence[int] = ()) -> None:
    """The walk (readers never seen during planning) descends in last_seen_at; then the sweep,
    in id order, has exactly the readers who were seen or joined during planning (less those
    held or skipped for their choices)."""
    late = (readers.moved | set(readers.joined)) - set(held)
    cut = next((n for n, i in enumerate(order) if i in late), len(order))
    walk, sweep = order[:cut], order[cut:]
    seen = [readers.seen_at_start[i] for i in walk]
    assert seen == sorted(seen, reverse=True)
    assert sweep == sorted(late)


def test_readers_living_during_planning_are_each_planned_once_freshest_first(
    store: SqlStores,
) -> None:
    clock = FakeClock(1_700_000_000.0)
    readers = Readers(store, clock, ["breaking"])
    audience = readers.seed(30)
    readers.add(clock() - DAY_S, ["sport"])  # never in the audience
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, clock())
    planning = BusyPlanning(store.engine, store.topics)
    planning.between = readers.live(
        alert.id, lambda: sorted(set(audience) - set(planned_in_order(store.engine, alert.id)))
    )

    delivery.plan_fanout(alert.id, planning, RecordingQueue(), POLICY, clock)

    order = planned_in_order(store.engine, alert.id)
    assert Counter(order) == Counter(audience + readers.joined)
    assert readers.moved and len(readers.joined) == 12
    assert_freshest_first(order, readers)
    done = store.alerts.get_alert(alert.id)
    assert done is not None and done.planned and done.counts.audience == len(order)


def test_quiet_hours_and_caps_keep_exactly_once_while_readers_live(store: SqlStores) -> None:
    clock = FakeClock(EVENING)
    readers = Readers(store, clock, ["politics"])
    audience = readers.seed(24)
    prefs = SqlPreferences(store.engine)
    asleep = audience[::4]
    capped = audience[1::4]
    for sid in asleep:
        prefs.set_preferences(sid, ReaderPreferences(NAIROBI_NIGHT))
    for sid in capped:
        prefs.set_preferences(sid, ReaderPreferences(None, 1))
    with store.engine.begin() as conn:  # already had today's one alert
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id.in_(capped))
            .values(cap_day=reader_day(EVENING, 0), cap_count=1)
        )
    alert, _ = store.alerts.create_alert(
        draft(["politics"], urgency=Urgency.NORMAL, ttl_s=12 * 3600),
        "k",
        AlertStatus.QUEUED,
        0,
        clock(),
    )
    choices = BusyChoices(store.engine, store.topics.mask_of)

    def waiting() -> list[int]:
        held = set(ledger(store.engine, alert.id))
        return sorted(set(audience) - set(planned_in_order(store.engine, alert.id)) - held)

    choices.between = readers.live(alert.id, waiting, rounds=4)
    delivery.plan_fanout(alert.id, store.planning, RecordingQueue(), POLICY, clock, choices)

    pushed, rows = planned_in_order(store.engine, alert.id), ledger(store.engine, alert.id)
    assert Counter(pushed + list(rows)) == Counter(audience + readers.joined)
    assert {rows[i] for i in asleep if i in rows} == {int(LedgerStatus.HELD)}
    assert {rows[i] for i in capped if i in rows} == {int(LedgerStatus.CAPPED)}
    assert set(asleep) <= set(rows) and set(capped) <= set(rows)
    assert_freshest_first(pushed, readers, list(rows))


@pytest.mark.parametrize("killed_after", [0, 2, 4])  # the 1st, 3rd (walk) or 5th page (sweep)
def test_a_killed_planner_resumes_and_plans_nobody_twice(
    store: SqlStores, killed_after: int
) -> None:
    clock = FakeClock(1_700_000_000.0)
    readers = Readers(store, clock, ["breaking"])
    audience = readers.seed(12)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, clock())
    planning = BusyPlanning(store.engine, store.topics)
    planning.between = readers.live(
        alert.id,
        lambda: sorted(set(audience) - set(planned_in_order(store.engine, alert.id))),
        rounds=2,
    )
    small = delivery.DeliveryPolicy(batch_size=3)

    with pytest.raises(WorkerKilled):
        delivery.plan_fanout(
            alert.id, planning, FakeTaskQueue(kill_after=killed_after), small, clock
        )
    delivery.plan_fanout(alert.id, planning, RecordingQueue(), small, clock)

    order = planned_in_order(store.engine, alert.id)
    assert Counter(order) == Counter(audience + readers.joined)
    assert len(order) == 16
    assert_freshest_first(order, readers)


def test_two_planners_in_the_final_sweep_one_loses_cleanly(store: SqlStores) -> None:
    clock = FakeClock(1_700_000_000.0)
    fresh = [store.subscriptions.upsert(sub(n), clock() + n)[0].id for n in range(1, 6)]
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, clock())
    sending = store.planning.start_sending(alert.id, clock())
    assert sending is not None
    start = Cursor(0, clock())
    assert store.planning.next_audience_page(sending, start, 10) == ([], start)  # all seen since
    one = store.planning.unplanned_since(sending, 0, sweep_since(sending), 10)
    two = store.planning.unplanned_since(sending, 0, sweep_since(sending), 10)
    assert one == two == (fresh, fresh[-1])
    store.planning.add_batch(alert.id, fresh[:2], start, Cursor(fresh[1], SWEEP), clock())
    with pytest.raises(PlanningConflict):
        store.planning.add_batch(alert.id, fresh[:2], start, Cursor(fresh[1], SWEEP), clock())
    # What the loser would look up now leaves out what the winner planned.
    cursor = store.planning.planning_cursor(alert.id)
    assert cursor == Cursor(fresh[1], SWEEP)
    assert store.planning.unplanned_since(sending, 0, sweep_since(sending), 10) == (
        fresh[2:],
        fresh[-1],
    )
