"""Freshest first (core/freshness.py) against the in-memory store: the most recently seen readers
are planned first, and every reader of the audience is planned exactly once, even while readers
are seen again, new ones subscribe, and planners crash or race."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from core.delivery import DeliveryPolicy, plan_fanout
from core.freshness import SWEEP, SWEEP_MARGIN_S, Cursor
from core.model import Alert, AlertKind
from core.ports import PlanningConflict
from tests.support.fakes import FakeClock, FakeDeliveryStore, FakeTaskQueue, WorkerKilled

POLICY = DeliveryPolicy(batch_size=4)
DAY_S = 86400.0


class BusyStore(FakeDeliveryStore):
    """Readers keep living while the planner works: after each committed page, `between` runs."""

    between: Callable[[FakeDeliveryStore], None] | None = None

    def add_batch(
        self, alert_id: int, ids: Sequence[int], after: Cursor, last: Cursor, now: float
    ) -> int:
        batch = super().add_batch(alert_id, ids, after, last, now)
        if self.between is not None:
            self.between(self)
        return batch


def planned_ids(store: FakeDeliveryStore, alert_id: int) -> list[int]:
    return [i for b in store.batches.values() if b.alert_id == alert_id for i in b.ids]


def seen_of(store: FakeDeliveryStore, ids: list[int]) -> list[float]:
    return [store.subs[i].seen for i in ids]


def test_the_most_recently_seen_readers_are_planned_first_each_once() -> None:
    clock = FakeClock()
    store, queue = FakeDeliveryStore(), FakeTaskQueue()
    rng = random.Random(7)
    readers = [store.add_subscription(seen=clock() - rng.uniform(0, 90 * DAY_S)) for _ in range(30)]
    store.add_subscription(("sport",), seen=clock())  # not in the audience
    alert_id = store.add_alert(("breaking",), now=clock())

    assert plan_fanout(alert_id, store, queue, POLICY, clock) == 8  # 30 readers, 4 a batch
    order = planned_ids(store, alert_id)
    assert sorted(order) == readers
    assert seen_of(store, order) == sorted(seen_of(store, readers), reverse=True)


def test_with_the_setting_off_readers_are_planned_in_id_order() -> None:
    clock = FakeClock()
    store, queue = FakeDeliveryStore(), FakeTaskQueue()
    readers = [store.add_subscription(seen=clock() - n) for n in range(10, 0, -1)]
    alert_id = store.add_alert(("breaking",), now=clock())
    policy = dataclasses.replace(POLICY, freshest_first=False)

    plan_fanout(alert_id, store, queue, policy, clock)

    assert planned_ids(store, alert_id) == readers


def test_a_test_send_keeps_id_order() -> None:
    clock = FakeClock()
    store, queue = FakeDeliveryStore(), FakeTaskQueue()
    readers = [store.add_subscription(seen=clock() - n) for n in range(6, 0, -1)]
    for sid in readers:
        store.subs[sid].test_device_user_id = 9
    alert_id = store.add_alert(("breaking",), now=clock())
    row = store.alerts[alert_id]
    row.alert = dataclasses.replace(row.alert, kind=AlertKind.TEST, test_user_id=9)

    plan_fanout(alert_id, store, queue, POLICY, clock)

    assert planned_ids(store, alert_id) == readers


def test_readers_seen_again_and_new_readers_during_planning_are_planned_exactly_once() -> None:
    clock = FakeClock()
    store, queue = BusyStore(), FakeTaskQueue()
    rng = random.Random(11)
    audience = [
        store.add_subscription(seen=clock() - rng.uniform(0, 60 * DAY_S)) for _ in range(40)
    ]
    alert_id = store.add_alert(("breaking",), now=clock())
    joined: list[int] = []

    def life(s: FakeDeliveryStore) -> None:
        clock.advance(1.0)
        if len(s.batches) > 12:
            return  # (new readers keep the sweep going as long as they come)
        planned = set(planned_ids(s, alert_id))
        waiting = [i for i in audience if i not in planned]
        for sid in rng.sample(waiting, min(2, len(waiting))):  # resubscribe before their turn
            s.touch(sid, clock())
        s.touch(rng.choice(sorted(planned)), clock())  # seen again after being planned
        joined.append(s.add_subscription(seen=clock()))  # a new reader

    store.between = life
    plan_fanout(alert_id, store, queue, POLICY, clock)

    order = planned_ids(store, alert_id)
    assert Counter(order) == Counter(audience + joined)
    assert max(Counter(order).values()) == 1
    alert = store.get_alert(alert_id)
    assert alert is not None and alert.planned and alert.counts.audience == len(order)


def test_the_walk_goes_from_fresh_to_stale_and_the_sweep_comes_last() -> None:
    clock = FakeClock()
    store, queue = BusyStore(), FakeTaskQueue()
    audience = [store.add_subscription(seen=clock() - n * DAY_S) for n in range(1, 13)]
    alert_id = store.add_alert(("breaking",), now=clock())
    t0 = clock()
    stale = audience[-1]  # the last one the walk would reach

    def life(s: FakeDeliveryStore) -> None:
        clock.advance(1.0)
        if len(s.batches) == 1:
            s.touch(stale, clock())

    store.between = life
    plan_fanout(alert_id, store, queue, POLICY, clock)

    order = planned_ids(store, alert_id)
    assert order == [*audience[:-1], stale]  # the resubscribed reader: in the final sweep
    assert store.subs[stale].seen > t0
    assert store.alerts[alert_id].cursor == Cursor(stale, SWEEP)


def test_a_reader_seen_just_before_the_start_but_committed_late_is_still_planned() -> None:
    """A resubscribe reads the clock, then commits after the walk passed the reader: its time
    lies before T0 but above the cursor. The sweep's margin catches it."""
    clock = FakeClock()
    store, queue = BusyStore(), FakeTaskQueue()
    audience = [store.add_subscription(seen=clock() - n * DAY_S) for n in range(1, 13)]
    alert_id = store.add_alert(("breaking",), now=clock())
    late = audience[-1]

    def life(s: FakeDeliveryStore) -> None:
        if len(s.batches) == 1:
            s.touch(late, clock() - SWEEP_MARGIN_S / 2)

    store.between = life
    plan_fanout(alert_id, store, queue, POLICY, clock)

    assert sorted(planned_ids(store, alert_id)) == audience


@pytest.mark.parametrize("crash_after", [1, 3, 5, 6, 7])
def test_a_planner_killed_mid_walk_or_mid_sweep_resumes_without_planning_anyone_twice(
    crash_after: int,
) -> None:
    clock = FakeClock()
    store = BusyStore()
    audience = [store.add_subscription(seen=clock() - n * DAY_S) for n in range(1, 11)]
    alert_id = store.add_alert(("breaking",), now=clock())
    joined: list[int] = []

    def life(s: FakeDeliveryStore) -> None:
        clock.advance(1.0)
        if len(s.batches) <= 2:
            joined.append(s.add_subscription(seen=clock()))
            joined.append(s.add_subscription(seen=clock()))
            s.touch(audience[-1], clock())

    store.between = life
    small = dataclasses.replace(POLICY, batch_size=2)
    with pytest.raises(WorkerKilled):
        plan_fanout(alert_id, store, FakeTaskQueue(kill_after=crash_after), small, clock)
    store.between = None
    plan_fanout(alert_id, store, FakeTaskQueue(), small, clock)

    order = planned_ids(store, alert_id)
    assert sorted(order) == sorted(audience + joined)
    assert len(order) == len(set(order))


class SweepRival(FakeDeliveryStore):
    """A second planner commits each sweep page just after this one has looked it up."""

    def unplanned_since(
        self, alert: Alert, after_id: int, since: float, limit: int
    ) -> tuple[list[int], int]:
        ids, last = super().unplanned_since(alert, after_id, since, limit)
        if ids:
            cursor = self.planning_cursor(alert.id)
            self.add_batch(alert.id, ids[:1], cursor, Cursor(ids[0], SWEEP), 0.0)
        return ids, last


def test_a_planner_overtaken_in_the_sweep_stops_cleanly() -> None:
    clock = FakeClock()
    store = SweepRival()
    old = [store.add_subscription(seen=clock() - DAY_S) for _ in range(3)]
    fresh = [store.add_subscription(seen=clock() + 1) for _ in range(3)]  # seen after T0
    alert_id = store.add_alert(("breaking",), now=clock())

    assert plan_fanout(alert_id, store, FakeTaskQueue(), POLICY, clock) == 1  # the walk's page
    order = planned_ids(store, alert_id)
    assert order == old[::-1] + fresh[:1]  # the rival's sweep page; this planner stopped
    assert not store.alerts[alert_id].planned
    with pytest.raises(PlanningConflict):
        store.add_batch(alert_id, fresh[1:], Cursor(), Cursor(fresh[-1], SWEEP), 0.0)
