"""Retention: the database stays flat however long the newsroom sends.

- An alert's delivery ledger (one row per reader) and its batches' id lists are only needed
  while it sends, for a correction sent soon after, and for reader reports (displayed, clicked)
  that come within days. Once an alert is final and finished more than
  NEWSFLASH_LEDGER_RETENTION_DAYS ago, they go. Its counters (audience, delivered, gone, failed,
  displayed, clicked) stay on the alert, and what the report reads from the ledger (time to
  50/90/100 %, the delivered-over-time steps, outcomes per push service, readers per platform)
  is kept first as a snapshot. An alert with a correction still on its way keeps its ledger
  (that correction is addressed from it); a correction sent later goes to the current audience
  of its topics.
- When displays and clicks happened is counted per second (event_seconds): a big audience opens
  an alert during every second of a day. Once the ledger is gone, those seconds are folded
  into the steps the report's chart draws (event_steps, at most about 60 rows an alert), each
  step's row at its last second, so the chart and the time axis read the same as before.
- Audit entries older than NEWSFLASH_AUDIT_RETENTION_DAYS, hourly counts (churn, losses, per-host
  outcomes) older than NEWSFLASH_CHURN_RETENTION_DAYS, CMS webhook receipts older than
  NEWSFLASH_WEBHOOK_RECEIPT_RETENTION_DAYS and tombstones of gone subscriptions older than
  NEWSFLASH_TOMBSTONE_DAYS (core/tombstones.py; they restore nothing by then) go too.

Deletes run from beat on the maintenance lane, NEWSFLASH_RETENTION_CHUNK rows per statement,
each its own short transaction by an indexed key, on rows no send touches (the ledger of
finished alerts): a send never waits on them. A run stops after RUN_BUDGET_S and the next one
continues. On PostgreSQL the space of deleted rows is used again rather than the files growing: autovacuum
starts at 5 % dead ledger rows (migration 0012), and a run that deleted a million ledger rows or
more vacuums the ledger and batches itself (plain VACUUM: no lock a read or write waits on).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from core.model import Alert
from core.newsroom import build_report
from core.pace import release_time
from core.reports import delivered_frame, events_frame

log = logging.getLogger("newsflash.retention")

DAY_S = 86400.0
RUN_BUDGET_S = 120.0  # well inside the task time limit; the next run goes on
# A run that deleted this many ledger rows vacuums the ledger and batches itself (PostgreSQL);
# smaller ones leave it to autovacuum (set to start at 5 % dead rows on the ledger).
VACUUM_AFTER_ROWS = 1_000_000


@dataclass(frozen=True)
class RetentionPolicy:
    ledger_days: float = 14
    audit_days: float = 400
    churn_days: float = 400
    webhook_days: float = 7
    tombstone_days: float = 30
    chunk: int = 5000


class RetentionStore(Protocol):
    def prunable_alerts(self, finished_before: float, limit: int) -> list[int]:
        """Final alerts finished before the cutoff, ledger not yet pruned, no open correction."""
        ...

    def get_alert(self, alert_id: int) -> Alert | None: ...

    def is_pruned(self, alert_id: int) -> bool:
        """Whether retention removed (or is removing) this alert's ledger."""
        ...

    def delivery_milestones(self, alert_id: int, ranks: Sequence[int]) -> dict[int, float]: ...

    def delivered_by_step(self, alert_id: int, origin: float, step_s: float) -> dict[int, int]:
        """Deliveries per step since release, from the ledger."""
        ...

    def outcomes_by_host(self, alert_id: int) -> list[tuple[str | None, int, int]]:
        """(push host, ledger status, rows), from the ledger."""
        ...

    def platform_groups(self, alert_id: int) -> list[tuple[str, str | None, int]]:
        """(push host, platform, readers) the alert reached, from the ledger."""
        ...

    def mark_pruned(self, alert_id: int, kept: KeptReport, now: float) -> bool:
        """Keep the report's snapshot and mark the ledger as going; False (nothing done) if a
        correction of the alert got under way meanwhile."""
        ...

    def event_span(self, alert_id: int, origin: float) -> float | None: ...

    def compact_events(self, alert_id: int, origin: float, step_s: float) -> int:
        """Fold the alert's per-second event counts into steps of `step_s` from `origin` (the
        report's own grouping), each step's row at its last second; rows removed."""
        ...

    def pruning(self, limit: int) -> list[int]:
        """Alerts marked pruned and not yet cleared (ledger or batch rows left, or their event
        seconds not yet folded)."""
        ...

    def delete_ledger_chunk(self, alert_id: int, limit: int) -> int: ...
    def delete_batches_chunk(self, alert_id: int, limit: int) -> int: ...
    def finish_pruning(self, alert_id: int, now: float) -> None: ...
    def delete_older(self, what: str, cutoff: float, limit: int) -> int:
        """One chunk of `what` ("audit", "churn", "webhooks", "tombstones") older than cutoff."""
        ...

    def reclaim_space(self, tables: Sequence[str]) -> None:
        """Make deleted rows' space reusable (PostgreSQL: plain VACUUM); nothing on SQLite."""
        ...


@dataclass(frozen=True)
class KeptReport:
    """What the report reads from the ledger, kept before the ledger goes."""

    milestones: dict[int, float]  # rank: unix time
    step_s: float  # the delivered-over-time chart's step
    delivered: dict[int, int]  # step: deliveries
    outcomes: list[tuple[str | None, int, int]]  # (push host, ledger status, rows)
    platforms: list[tuple[str, str | None, int]]  # (push host, platform, readers reached)


@dataclass
class RetentionReport:
    alerts: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    def add(self, what: str, n: int) -> None:
        self.deleted[what] = self.deleted.get(what, 0) + n


class _Snapshot:
    """Records the milestones build_report asks for, so the report reads the same later."""

    def __init__(self, store: RetentionStore) -> None:
        self.store = store
        self.found: dict[int, float] = {}

    def delivery_milestones(self, alert_id: int, ranks: Sequence[int]) -> dict[int, float]:
        self.found = self.store.delivery_milestones(alert_id, ranks)
        return self.found


def kept_report(store: RetentionStore, alert: Alert, now: float) -> KeptReport:
    """Everything the report reads from the ledger: the milestones build_report asks for, the
    delivered-over-time steps, the outcomes per push service and the readers per platform."""
    snapshot = _Snapshot(store)
    build_report(alert, snapshot)
    frame = delivered_frame(alert, now)
    step_s, curve = 1.0, {}
    if frame is not None:
        step_s, curve = frame.step_s, store.delivered_by_step(alert.id, frame.origin, frame.step_s)
    return KeptReport(
        snapshot.found,
        step_s,
        curve,
        store.outcomes_by_host(alert.id),
        store.platform_groups(alert.id),
    )


def compact_events(store: RetentionStore, alert: Alert, now: float) -> int:
    """Fold a pruned alert's per-second display and click counts into its chart's steps."""
    origin = release_time(alert)
    frame = events_frame(alert, store.event_span(alert.id, origin), now)
    if frame is None or frame.step_s <= 1:
        return 0  # a step of a second or less: every row is a step of its own
    return store.compact_events(alert.id, frame.origin, frame.step_s)


def run_retention(
    store: RetentionStore,
    policy: RetentionPolicy,
    now: float,
    clock: Callable[[], float] = time.monotonic,
    budget_s: float = RUN_BUDGET_S,
) -> RetentionReport:
    """One pass: mark, delete in chunks until done or out of time, then the small tables."""
    deadline = clock() + budget_s
    report = RetentionReport()
    for alert_id in store.prunable_alerts(now - policy.ledger_days * DAY_S, 100):
        alert = store.get_alert(alert_id)
        if alert is None:
            continue
        if store.mark_pruned(alert.id, kept_report(store, alert, now), now):
            report.alerts += 1
    for alert_id in store.pruning(100):
        for what, delete in (
            ("deliveries", store.delete_ledger_chunk),
            ("batches", store.delete_batches_chunk),
        ):
            if not _drain(partial(delete, alert_id, policy.chunk), what, report, deadline, clock):
                return _done(store, report, complete=False)
        alert = store.get_alert(alert_id)
        if alert is not None:
            report.add("event_seconds", compact_events(store, alert, now))
            if clock() >= deadline:  # not finished: the next run folds what is left
                return _done(store, report, complete=False)
        store.finish_pruning(alert_id, now)
    for what, days in (
        ("audit", policy.audit_days),
        ("churn", policy.churn_days),
        ("webhooks", policy.webhook_days),
        ("tombstones", policy.tombstone_days),
    ):
        older = partial(store.delete_older, what, now - days * DAY_S, policy.chunk)
        if not _drain(older, what, report, deadline, clock):
            return _done(store, report, complete=False)
    return _done(store, report, complete=True)


def _drain(
    step: Callable[[], int],
    what: str,
    report: RetentionReport,
    deadline: float,
    clock: Callable[[], float],
) -> bool:
    """Delete chunk after chunk until one comes back empty; False when time ran out first."""
    while True:
        n = step()
        report.add(what, n)
        if n == 0:
            return True
        if clock() >= deadline:
            return False


def _done(store: RetentionStore, report: RetentionReport, complete: bool) -> RetentionReport:
    report.complete = complete
    if report.deleted.get("deliveries", 0) >= VACUUM_AFTER_ROWS:
        store.reclaim_space(["deliveries", "batches", "event_seconds"])
    if report.alerts or any(report.deleted.values()):
        log.info(
            "retention",
            extra={"alerts": report.alerts, "deleted": report.deleted, "complete": complete},
        )
    return report
