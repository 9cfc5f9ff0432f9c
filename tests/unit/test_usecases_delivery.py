"""The Delivery use cases on in-memory ports: what each periodic task does with the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.delivery import DeliveryPolicy
from core.model import AlertDraft, AlertStatus, Batch, Urgency
from core.usecases.delivery import Delivery
from tests.support.usecase_fakes import ORIGIN, Clock, FakeAlerts, FakeQueue


@dataclass
class FakeDeliveryStore(FakeAlerts):
    due: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)

    def due_scheduled(self, now: float) -> list[int]:
        fired, self.due = self.due, []
        return fired

    def claim_batch(self, batch_id: int, now: float, stale_after_s: float) -> Batch | None:
        self.claimed.append(batch_id)
        return None  # another worker holds it: nothing to send


@dataclass
class FakeHosts:
    flushed: int = 0

    def flush(self) -> None:
        self.flushed += 1


@dataclass
class FakeHousekeeping:
    cutoffs: list[float] = field(default_factory=list)
    recounts: int = 0

    def purge_stale_subscriptions(self, older_than: float) -> int:
        self.cutoffs.append(older_than)
        return 4

    def recount_masks(self) -> None:
        self.recounts += 1


def _delivery(
    store: FakeDeliveryStore,
    queue: FakeQueue,
    hosts: FakeHosts,
    house: FakeHousekeeping,
    clock: Clock,
) -> Delivery:
    return Delivery(store, store, store, queue, None, hosts, house, DeliveryPolicy(), 30, clock)  # type: ignore[arg-type]


def test_due_scheduled_alerts_are_planned_once_and_housekeeping_uses_the_clock() -> None:
    store = FakeDeliveryStore()
    draft = AlertDraft("t", "b", f"{ORIGIN}/a", ("breaking",), Urgency.HIGH, 3600)
    alert, _ = store.create_alert(draft, "story", AlertStatus.SCHEDULED, 0, 0.0)
    store.due = [alert.id]
    queue, hosts, house, clock = FakeQueue(), FakeHosts(), FakeHousekeeping(), Clock()
    delivery = _delivery(store, queue, hosts, house, clock)
    assert delivery.fire_scheduled() == 1 and queue.plans == [alert.id]
    assert delivery.fire_scheduled() == 0 and queue.plans == [alert.id]
    assert delivery.purge() == 4 and house.cutoffs == [clock.now - 30 * 86400]
    delivery.recount()
    assert house.recounts == 1


def test_a_batch_another_worker_holds_sends_nothing_and_host_counts_are_still_written() -> None:
    store, hosts = FakeDeliveryStore(), FakeHosts()
    delivery = _delivery(store, FakeQueue(), hosts, FakeHousekeeping(), Clock())
    report = delivery.deliver(7)
    assert store.claimed == [7] and report.sent == 0 and hosts.flushed == 1
