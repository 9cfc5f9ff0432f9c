"""Batch leases on SQLite and PostgreSQL: one owner at a time, a dead owner's batch taken over
once its lease runs out, a live owner's never; the sweep and a broker that forgot its tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import Engine, select

from core import delivery, reclaim
from core.adapters import tables as t
from core.adapters.hosts import MemoryHostHealth
from core.adapters.leases_sql import SqlBatchLeases
from core.adapters.stores_sql import SqlStores
from core.model import AlertStatus, BatchStatus
from core.ports import PushMessage, PushResult
from tests.support.fakes import RecordingQueue
from tests.support.samples import TOPICS, draft, sub

LEASE_S = 6.0
POLICY = delivery.DeliveryPolicy(batch_size=5, lease_s=LEASE_S)


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


class Memory:
    def __init__(self, forgot: bool = False) -> None:
        self.answer = forgot

    def forgot(self) -> bool:
        return self.answer


def _planned(store: SqlStores, readers: int = 10) -> tuple[int, list[int]]:
    for n in range(readers):
        store.subscriptions.upsert(sub(n + 1), 1.0)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    delivery.plan_fanout(alert.id, store.planning, queue, POLICY, clock=lambda: 100.0)
    return alert.id, queue.batches


def _owner(engine: Engine, batch_id: int) -> tuple[str, str | None]:
    b = t.batches
    with engine.connect() as conn:
        row = conn.execute(select(b.c.status, b.c.owner).where(b.c.id == batch_id)).one()
    return str(row.status), row.owner


def test_one_owner_at_a_time_and_a_dead_ones_batch_is_taken_over(
    store: SqlStores, engine: Engine
) -> None:
    leases = SqlBatchLeases(engine)
    _alert, (batch, *_rest) = _planned(store)
    assert leases.claim(batch, "a", 100.0, LEASE_S) is not None
    # A live lease: nobody else gets the batch, however often its task is delivered.
    assert leases.claim(batch, "b", 105.9, LEASE_S) is None
    assert leases.renew(batch, "a", 105.0)
    assert leases.claim(batch, "b", 110.9, LEASE_S) is None
    assert not leases.renew(batch, "b", 111.0), "only the owner renews"
    # "a" died: from the lease's end on a redelivered task takes the batch directly.
    taken = leases.claim(batch, "b", 111.1, LEASE_S)
    assert taken is not None and taken.status is BatchStatus.SENDING
    assert _owner(engine, batch) == ("sending", "b")
    # "a" was only slow: its renewal and its finish find the batch gone.
    assert not leases.renew(batch, "a", 111.2)
    assert not leases.finish(batch, "a", taken.alert_id, False, 111.3)
    assert leases.finish(batch, "b", taken.alert_id, False, 111.4)
    assert _owner(engine, batch) == ("done", "b")
    assert leases.claim(batch, "c", 500.0, LEASE_S) is None, "a done batch stays done"


def test_the_sweep_queues_lapsed_leases_again_and_never_a_live_one(
    store: SqlStores, engine: Engine
) -> None:
    leases = SqlBatchLeases(engine)
    _alert_id, (dead, live, *_rest) = _planned(store)
    assert leases.claim(dead, "dead", 100.0, LEASE_S)
    assert leases.claim(live, "live", 100.0, LEASE_S)
    assert leases.renew(live, "live", 104.0)
    queue = RecordingQueue()
    swept = reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 107.0)
    assert len(swept.expired) == 1 and queue.batches == [dead]
    assert _owner(engine, dead) == ("queued", None)
    assert _owner(engine, live) == ("sending", "live")
    assert not leases.renew(dead, "dead", 107.5), "a swept batch is no longer the old owner's"
    # Swept again at once: the batch is queued, not lapsed (its new task is on its way).
    assert reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 107.1).expired == []
    assert leases.claim(dead, "next", 107.2, LEASE_S) is not None


def test_a_broker_that_forgot_gets_every_queued_batch_and_unplanned_alert_again(
    store: SqlStores, engine: Engine
) -> None:
    leases = SqlBatchLeases(engine)
    _alert_id, batches = _planned(store)
    assert leases.claim(batches[0], "w", 100.0, LEASE_S)
    waiting, _ = store.alerts.create_alert(draft(), "k2", AlertStatus.QUEUED, 0, 101.0)
    queue = RecordingQueue()
    assert reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 102.0).batches == 0
    swept = reclaim.reclaim_all(leases, store.alerts, queue, Memory(forgot=True), LEASE_S, 102.0)
    assert sorted(queue.batches) == sorted(batches[1:]), "the sending batch keeps its worker"
    assert queue.plans == [waiting.id] and swept.plans == 1


def test_a_new_broker_with_nothing_queued_is_no_warning_and_a_lost_one_is(
    store: SqlStores, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # The first `make run` on a fresh machine: the broker has no marker yet, nothing is queued.
    leases = SqlBatchLeases(engine)
    queue = RecordingQueue()
    with caplog.at_level(logging.INFO, logger="newsflash.delivery"):
        reclaim.reclaim_all(leases, store.alerts, queue, Memory(forgot=True), LEASE_S, 100.0)
    assert queue.batches == [] and queue.plans == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    # A broker that lost queued work still says so, with what was sent again.
    _alert_id, batches = _planned(store)
    reclaim.reclaim_all(leases, store.alerts, queue, Memory(forgot=True), LEASE_S, 101.0)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.getMessage() == "broker came back empty; queued work sent again"
    assert warning.__dict__["batches"] == len(batches)


def test_an_alert_published_while_the_broker_was_down_is_planned_after_a_lease(
    store: SqlStores, engine: Engine
) -> None:
    leases = SqlBatchLeases(engine)
    waiting, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 100.0)
    queue = RecordingQueue()
    reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 100.0 + LEASE_S - 1)
    assert queue.plans == []
    reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 100.0 + LEASE_S + 1)
    assert queue.plans == [waiting.id]
    reclaim.reclaim_all(leases, store.alerts, queue, Memory(), LEASE_S, 100.0 + LEASE_S + 2)
    assert queue.plans == [waiting.id], "sent again only after another lease"


def _deliver_with_short_leases(
    batch: int, store: SqlStores, sender: TakenOverSender, leases: SqlBatchLeases
) -> delivery.BatchReport:
    """deliver_batch with 0.4 s leases, on the planning clock's 100.0 running on in real time."""
    began = time.time()
    return delivery.deliver_batch(
        batch,
        store.ledger,
        sender,
        MemoryHostHealth(),
        delivery.DeliveryPolicy(batch_size=5, lease_s=0.4),
        clock=lambda: 100.0 + time.time() - began,
        leases=leases,
    )


class TakenOverSender:
    """Sends a few, then another worker takes the batch over (the lease was lost)."""

    def __init__(self, takeover: Callable[[], None], after: int) -> None:
        self.takeover, self.after = takeover, after
        self.sent: list[int] = []

    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        for m in messages:
            if len(self.sent) == self.after:
                self.takeover()
                time.sleep(0.3)  # the lease thread's next renewal finds another owner
            if should_stop():
                return
            self.sent.append(m.subscription_id)
            on_result(PushResult(m.subscription_id, "fcm.googleapis.com", 201))


def test_a_worker_whose_batch_was_taken_over_stops_and_leaves_it_unfinished(
    store: SqlStores, engine: Engine
) -> None:
    leases = SqlBatchLeases(engine)
    alert_id, (batch, *_rest) = _planned(store)
    b = t.batches

    def takeover() -> None:
        # The sweep found the lease lapsed (a long pause) and another worker claimed it.
        with engine.begin() as conn:
            conn.execute(b.update().where(b.c.id == batch).values(owner="other", heartbeat_at=1e12))

    sender = TakenOverSender(takeover, after=2)
    report = _deliver_with_short_leases(batch, store, sender, leases)
    assert report.lost and len(sender.sent) < 5
    assert _owner(engine, batch) == ("sending", "other"), "the new owner finishes it"
    assert store.alerts.get_alert(alert_id).counts.delivered == len(sender.sent)  # type: ignore[union-attr]


class SlowClaims(SqlBatchLeases):
    """The database holds the claim for longer than a lease (frozen, behind a lock): it is
    written with the time it carried, and returns a lease that has already run out."""

    def __init__(self, engine: Engine, held_s: float) -> None:
        super().__init__(engine)
        self.held_s = held_s

    def claim(self, batch_id: int, owner: str, now: float, lease_s: float):  # type: ignore[no-untyped-def]
        time.sleep(self.held_s)
        return super().claim(batch_id, owner, now, lease_s)


def test_a_claim_the_database_held_past_its_lease_sends_nothing(
    store: SqlStores, engine: Engine
) -> None:
    """Found with PostgreSQL frozen for 10 s a quarter into a 4,000-reader send: two batches
    whose claims were in flight came back with leases already lapsed, a sweep gave them to a
    second owner, and both sent them (400 readers twice). The first owner counted its lease
    from when the claim returned; it counts from when it asked now, so it stops before its
    first request and leaves the batch to whoever takes it."""
    _alert, (batch, *_rest) = _planned(store)
    sender = TakenOverSender(lambda: None, after=-1)
    report = _deliver_with_short_leases(batch, store, sender, SlowClaims(engine, held_s=0.5))
    assert report.lost and sender.sent == []
    assert _owner(engine, batch)[0] == "sending"  # left for the sweep: its lease has run out
    taken = SqlBatchLeases(engine).claim(batch, "next", 1e9, 0.4)
    assert taken is not None  # the next owner sends it, alone
