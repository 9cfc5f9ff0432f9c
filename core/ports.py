"""The small interfaces the core needs from the outside world (storage, queue, push, clock)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from core.freshness import Cursor
from core.model import (
    Alert,
    AlertDraft,
    AlertStatus,
    Batch,
    Lane,
    LedgerStatus,
    Subscription,
    SubscriptionInput,
    Target,
)


class SubscriptionStore(Protocol):
    def upsert(self, sub: SubscriptionInput, now: float) -> tuple[Subscription, bool]: ...
    def get_by_endpoint(self, endpoint: str) -> Subscription | None: ...
    def set_topics(
        self, sub_id: int, topics: Sequence[str], now: float, *, lang: str | None = None
    ) -> Subscription:
        """The reader's new topics, and language unless lang is None (the stored one stays)."""
        ...

    def replace(self, old_id: int, new: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        """pushsubscriptionchange: the old row out and the new one in, carrying the reader's
        quiet hours, daily cap and followed stories, all in one transaction."""
        ...

    def delete_ids(self, ids: Iterable[int]) -> int: ...
    def audience_size(self, topics: Sequence[str]) -> int: ...


@dataclass(frozen=True)
class LedgerEntry:
    subscription_id: int
    status: LedgerStatus
    status_code: int | None
    attempts: int
    next_attempt_at: float | None = None
    push_host: str = ""  # for the per-host outcome counts (the audience-health view)


@dataclass(frozen=True)
class RecordedCounts:
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    retry: int = 0


@dataclass(frozen=True)
class AlertProgress:
    """The counts that decide whether a sending alert is finished (see core.completion)."""

    status: AlertStatus
    planned: bool
    batches_total: int
    batches_done: int
    waiting: bool  # some ledger row waits for a retry
    delivered: int
    failed: int


class AlertReads(Protocol):
    def get_alert(self, alert_id: int) -> Alert | None: ...
    def is_stopped(self, alert_id: int) -> bool: ...
    def alert_progress(self, alert_id: int) -> AlertProgress | None: ...
    def finish_alert(
        self, alert_id: int, status: AlertStatus, seen: AlertProgress, now: float
    ) -> bool:
        """Write the decided final status if the alert is still as `seen` (sending, same
        batches); False if another process finished it or new work arrived meanwhile."""
        ...


class AlertStore(AlertReads, Protocol):
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
        """Store a new alert, or return the one with its article id or key (created False).
        With `stops`, the same transaction cancels that alert if it is still queued or sending
        and not a test send (a correction taking it over); nothing is stopped when the alert
        was there already."""
        ...

    def find_alert(
        self, *, article_id: str | None, idempotency_key: str | None
    ) -> Alert | None: ...
    def set_status(
        self,
        alert_id: int,
        status: AlertStatus,
        now: float,
        *,
        only_from: Sequence[AlertStatus] = (),
    ) -> bool: ...


class PlanningStore(AlertReads, Protocol):
    """Walking an alert's audience into batches, resumably (the planning cursor)."""

    def start_sending(self, alert_id: int, now: float) -> Alert | None: ...
    def next_audience_page(
        self, alert: Alert, after: Cursor, limit: int
    ) -> tuple[list[int], Cursor]:
        """The next keyset page after `after` in the cursor's order, and the cursor after it."""
        ...

    def add_batch(
        self, alert_id: int, ids: Sequence[int], after: Cursor, last: Cursor, now: float
    ) -> int:
        """Commit a page with the cursor moving from `after` to `last`; PlanningConflict if the
        stored cursor is no longer `after` (another planner moved it)."""
        ...

    def unplanned_since(
        self, alert: Alert, after_id: int, since: float, limit: int
    ) -> tuple[list[int], int]:
        """The final sweep: up to `limit` readers of the audience seen at or after `since`, with
        ids above `after_id`, in id order, that no plan batch or ledger row of the alert holds;
        and the last id examined (`after_id` when there are none)."""
        ...

    def finish_planning(self, alert_id: int, now: float) -> None: ...
    def planning_cursor(self, alert_id: int) -> Cursor: ...
    def stop_sending(self, alert_id: int, now: float) -> None:
        """Cancel the alert if it is still queued or sending (its correction takes over; its
        release normally did already)."""
        ...

    def in_flight(self, alert_id: int, now: float, lease_s: float) -> bool:
        """Whether a sender still holds one of the alert's batches (a lease younger than
        `lease_s`): pushes may still be on their way."""
        ...


class LedgerStore(AlertReads, Protocol):
    """Batches and the delivery ledger: what makes fan-out exactly-once."""

    def claim_batch(self, batch_id: int, now: float, stale_after_s: float) -> Batch | None: ...
    def load_targets(self, batch: Batch) -> tuple[list[Target], list[int]]: ...
    def record(
        self,
        alert_id: int,
        entries: Sequence[LedgerEntry],
        gone_ids: Sequence[int],
        now: float,
        batch_id: int | None = None,
    ) -> RecordedCounts: ...
    def heartbeat(self, batch_id: int, now: float) -> None: ...
    def finish_batch(
        self, batch_id: int, alert_id: int, missing: int, cancelled: bool, now: float
    ) -> None: ...


@dataclass(frozen=True)
class StaleAlerts:
    replan: list[int]  # planning never ran or stopped half way: planned again
    planned: list[int]  # planned but quiet: perhaps finished with nobody noticing


class RecoveryStore(AlertReads, Protocol):
    """The periodic duties: due retries, lost work, scheduled alerts whose time has come."""

    def take_due_retries(
        self, now: float, limit: int, batch_size: int
    ) -> list[tuple[int, int]]: ...
    def stale_batches(
        self, now: float, stale_after_s: float, limit: int
    ) -> list[tuple[int, int]]: ...
    def stale_alerts(self, now: float, stale_after_s: float) -> StaleAlerts: ...
    def due_scheduled(self, now: float) -> list[int]:
        """Scheduled alerts whose time has come become queued; their ids. A correction among
        them (its undo window over) stops the alert it corrects in the same transaction, as
        `create_alert` with `stops` does (core/corrections.py `stops_on_release`)."""
        ...


class DeliveryStore(PlanningStore, LedgerStore, RecoveryStore, Protocol):
    """All three delivery ports in one (what the in-memory fake implements)."""


class PlanningConflict(Exception):
    """Another planner advanced this alert's cursor first; this one stops."""


class QueueUnavailable(Exception):
    """The broker did not take a task: it refused, or gave no answer within its timeout. What
    the task stands for is already in the database, so the reconciler sends it later."""


class TaskQueue(Protocol):
    """Raises QueueUnavailable when the broker does not take the task, nothing else."""

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None: ...
    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None: ...


@dataclass(frozen=True)
class PushMessage:
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl_s: int
    urgency: str
    topic: str


@dataclass(frozen=True)
class PushResult:
    """What a push service answered, or why we got no answer (status None)."""

    subscription_id: int
    host: str
    status: int | None
    retry_after: str | None = None
    error: str | None = None  # "timeout", "connect", "refused_address", "blocked", "too_large"...
    elapsed_s: float = 0.0
    blocked_until: float | None = None


class PushSender(Protocol):
    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None: ...


class SendJob(Protocol):
    """A batch a sender has taken (see PipelinedSender)."""

    def wait_handed_off(self) -> None:
        """Until every push has been taken by a request, or the sender can take no more now."""
        ...

    def wait(self) -> None:
        """Until every push has its result; raises what `on_result` raised."""
        ...


@runtime_checkable
class PipelinedSender(PushSender, Protocol):
    """A sender that takes batches while earlier ones still wait for answers, so a worker
    process keeps its requests in flight across batches."""

    def submit(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> SendJob: ...

    def wait_for_room(self, timeout_s: float | None = None) -> bool: ...

    def drain(self, timeout_s: float | None = None) -> bool: ...

    def windows(self) -> dict[str, tuple[int, int, int]]: ...


class HostHealth(Protocol):
    """Per push-host state shared by all workers: Retry-After backoff and the circuit breaker."""

    def blocked_until(self, host: str, now: float) -> float | None:
        """When the host's hold or open breaker ends, if after `now`; else None."""
        ...

    def hold(self, host: str, until: float, reason: str) -> None: ...
    def open_breaker(self, host: str, until: float, reason: str) -> None: ...
    def count(self, host: str, answer: str) -> None: ...

    def last_delivered(self, host: str) -> float | None:
        """When any worker last had a 2xx from the host (shared, about a second late; None:
        not known). Refusals are judged with it (core/rejections.py)."""
        ...


class AuditLog(Protocol):
    """Who did what to which object: one row per action a person or the CMS takes."""

    def audit(
        self,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...
