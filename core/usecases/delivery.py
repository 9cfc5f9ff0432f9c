"""The Delivery use cases the workers run: plan, deliver a batch, retries, reconcile, housekeeping."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from core import choices, delivery
from core.choices import ChoiceStore
from core.delivery import BatchReport, DeliveryPolicy
from core.leases import BatchLeases, StoreLeases
from core.outbox import lanes_of
from core.outcomes import Decision
from core.ports import (
    HostHealth,
    LedgerStore,
    PlanningStore,
    PushResult,
    PushSender,
    RecoveryStore,
    TaskQueue,
)
from core.reclaim import BrokerMemory, Reclaimed, reclaim_all
from core.retention import RetentionPolicy, RetentionStore, run_retention

log = logging.getLogger("newsflash.delivery")

Observer = Callable[[PushResult, Decision], None]


class BufferedHostHealth(HostHealth, Protocol):
    def flush(self) -> None:
        """Write the counts kept in memory during a batch."""
        ...


class Housekeeping(Protocol):
    def purge_stale_subscriptions(self, older_than: float) -> int: ...
    def recount_masks(self) -> None: ...
    def refresh_quiet_zones(self, now: float) -> int: ...


class GateCheck(Protocol):
    def holds(self, alert_id: int) -> bool: ...


class _NoMemory:
    def forgot(self) -> bool:
        return False


class Delivery:
    """Fan-out and its periodic duties; each method is one task's whole job."""

    def __init__(
        self,
        planning: PlanningStore,
        ledger: LedgerStore,
        recovery: RecoveryStore,
        queue: TaskQueue,
        sender: PushSender,
        hosts: BufferedHostHealth,
        housekeeping: Housekeeping,
        policy: DeliveryPolicy,
        subscription_max_age_days: int,
        clock: Callable[[], float] = time.time,
        gate: GateCheck | None = None,
        choices: ChoiceStore | None = None,
        *,
        leases: BatchLeases | None = None,
        broker: BrokerMemory | None = None,
        retention: tuple[RetentionStore, RetentionPolicy] | None = None,
    ) -> None:
        self.kept = retention
        self._swept_at = time.monotonic()
        self.leases: BatchLeases = leases if leases is not None else StoreLeases(ledger)
        self.broker: BrokerMemory = broker if broker is not None else _NoMemory()
        self.planning = planning
        self.ledger = ledger
        self.recovery = recovery
        self.gate = gate
        self.choices = choices
        self.queue = queue
        self.sender = sender
        self.hosts = hosts
        self.housekeeping = housekeeping
        self.policy = policy
        self.max_age_s = subscription_max_age_days * 86400
        self.clock = clock
        self._finishing = delivery.Finishing()

    def plan(self, alert_id: int) -> int:
        """Walk the alert's audience into batches and enqueue one delivery task per batch."""
        if self.gate is not None and self.gate.holds(alert_id):
            return 0  # waiting for its article: the gate plans it when it opens
        pruned = None if self.kept is None else self.kept[0].is_pruned
        return delivery.plan_fanout(
            alert_id, self.planning, self.queue, self.policy, self.clock, self.choices, pruned
        )

    def deliver(
        self,
        batch_id: int,
        observe: Observer | None = None,
        on_complete: Callable[[BatchReport], None] | None = None,
    ) -> BatchReport:
        """Push one batch (idempotent), then write the per-host counts.

        With `on_complete`, returns once the sender has taken the batch (a report with
        `handed_off`); its last answers are recorded while the process takes its next batch,
        and `on_complete` gets the finished report. Without, returns the finished report."""

        def completed(report: BatchReport) -> None:
            self.hosts.flush()
            if on_complete is not None:
                on_complete(report)

        report = delivery.deliver_batch(
            batch_id,
            self.ledger,
            self.sender,
            self.hosts,
            self.policy,
            clock=self.clock,
            observe=observe,
            finishing=self._finishing if on_complete is not None else None,
            on_complete=completed,
            leases=self.leases,
        )
        return report

    def drain(self, timeout_s: float) -> bool:
        """Wait for batches handed to the sender to be recorded and finished (worker shutdown)."""
        return self._finishing.drain(timeout_s)

    def retry_due(self) -> int:
        """Due retries, and readers whose quiet hours are over, back into batches."""
        batches = delivery.schedule_due_retries(self.recovery, self.queue, self.policy, self.clock)
        if self.choices is not None:
            lane_of = lanes_of(self.recovery.get_alert)
            batches += choices.release_held(
                self.choices, self.queue, self.policy.batch_size, lane_of, self.clock
            )
        return batches

    def lapsed(self, limit: int = 16) -> list[tuple[int, int]]:
        """Asked by a delivery process between two batches, at most once a quarter lease: the
        reclaim sweep, and up to `limit` batches of dead workers it found, for this process to
        send next (a killed process may have held many: the sender takes batches while earlier
        ones are still in flight). Beat's sweep alone is not enough when every process is
        sending: it waits in the maintenance queue behind deliveries (and expires there), and the
        batches it queues again wait behind every batch already queued."""
        now = time.monotonic()
        if now - self._swept_at < self.policy.lease_s / 4:
            return []
        self._swept_at = now
        try:
            found = self._reclaim()
        except Exception:
            log.warning("reclaim sweep failed", exc_info=True)
            return []
        return found.expired[:limit]

    def reclaim(self) -> dict[str, int]:
        """Batches of dead workers (lease ran out), and all queued work after the broker lost it."""
        return self._reclaim().counts()

    def _reclaim(self) -> Reclaimed:
        return reclaim_all(
            self.leases, self.recovery, self.queue, self.broker, self.policy.lease_s, self.clock()
        )

    def reconcile(self) -> dict[str, int]:
        return delivery.reconcile(self.recovery, self.queue, self.policy, self.clock)

    def fire_scheduled(self) -> int:
        return delivery.fire_scheduled(self.recovery, self.queue, self.clock)

    def purge(self) -> int:
        """Forget subscriptions not seen for the configured number of days."""
        purged = self.housekeeping.purge_stale_subscriptions(self.clock() - self.max_age_s)
        if purged:
            log.info("purged stale subscriptions", extra={"count": purged})
        return purged

    def retention(self) -> dict[str, int]:
        """Delete what is past its retention, a chunk at a time, for at most two minutes."""
        if self.kept is None:
            return {}
        store, policy = self.kept
        report = run_retention(store, policy, self.clock())
        return {"alerts": report.alerts, **report.deleted}

    def recount(self) -> None:
        self.housekeeping.recount_masks()

    def refresh_quiet_zones(self) -> int:
        """Quiet hours follow their zone's summer time (core/quiet.py): hourly."""
        moved = self.housekeeping.refresh_quiet_zones(self.clock())
        if moved:
            log.info("quiet hours moved with their zone's offset", extra={"count": moved})
        return moved
