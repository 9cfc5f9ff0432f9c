"""Fan-out: plan an alert into batches, deliver a batch exactly once (core/batch.py), retry and
reconcile."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from core.choices import ChoiceStore, choice_step, choice_sweep_step, uses_choices
from core.completion import finish_if_done
from core.corrections import addressed, takes_over
from core.endpoints import EndpointPolicy
from core.freshness import SWEEP, Cursor, resume_at, sweep_since, walks_freshest_first
from core.model import Alert, AlertKind, AlertStatus, Lane
from core.outbox import Outbox, lanes_of
from core.ports import PlanningConflict, PlanningStore, RecoveryStore, TaskQueue
from core.receipts import Receipts
from core.rejections import RejectionJudge
from core.utm import UtmTags

log = logging.getLogger("newsflash.delivery")
SWEEP_PAGES = 20  # the final sweep looks up this many batches' worth of readers at a time
# How long a correction's planner waits for the pushes of the alert it stopped that are already
# on their way (each answered within a push's timeout; a dead sender's lease runs out sooner).
# Still busy after that: the reconciler plans the correction again later.
TAKE_OVER_WAIT_S = 15.0
TAKE_OVER_POLL_S = 0.1


@dataclass(frozen=True)
class DeliveryPolicy:
    batch_size: int = 1000
    retry_max_attempts: int = 6
    retry_base_s: float = 10.0
    retry_cap_s: float = 3600.0
    breaker_open_s: float = 300.0
    stale_after_s: float = 60.0
    lease_s: float = 6.0  # a batch's lease (core/leases.py)
    flush_every: int = 200
    flush_interval_s: float = 0.25
    stop_check_interval_s: float = 0.25
    # Endpoints are checked again at send time: the allowlist may have shrunk since a row was
    # stored, and a row may predate a rule. The resolved address is checked on every connection.
    endpoints: EndpointPolicy | None = None
    # Signs the receipt each payload carries (None: no receipts, reader reports never count).
    receipts: Receipts | None = None
    # The language of readers (and alerts) that never named one.
    default_lang: str = "en"
    # UTM tags for click-through URLs (None: off by setting).
    utm: UtmTags | None = None
    # Topic alerts reach the most recently seen readers first (core/freshness.py).
    freshest_first: bool = True
    # Whether a push service's 400/401/403 is about our request or one subscription
    # (core/rejections.py): one per process, like the policy itself.
    rejections: RejectionJudge = field(default_factory=RejectionJudge, compare=False)


def plan_fanout(
    alert_id: int,
    store: PlanningStore,
    queue: TaskQueue,
    policy: DeliveryPolicy,
    clock: Callable[[], float] = time.time,
    choices: ChoiceStore | None = None,
    pruned: Callable[[int], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Walk the audience in keyset pages; one delivery task per page. Resumable.

    Topic alerts are walked freshest first (core/freshness.py), others in id order.
    `pruned(alert_id)` says whether retention removed an alert's ledger (core/retention.py): a
    correction of such an alert is addressed by its topics instead. A correction's release
    stopped the alert it corrects (core/corrections.py; stopped here if not): its planner waits
    for that alert's pushes on their way, so no reader gets the old words after the correction.

    Each page is committed with the planning cursor before its task is enqueued, so a re-run
    (a redelivered task, the reconciler) continues where the last one stopped. With `choices`,
    non-breaking alerts honour readers' quiet hours and caps, and story updates reach followers.
    """
    alert = store.start_sending(alert_id, clock())
    if alert is None:
        return 0
    fresh = policy.freshest_first and walks_freshest_first(alert)  # never a correction
    if alert.kind is AlertKind.CORRECTION and alert.corrects_id is not None:
        if not _take_over(alert.corrects_id, store, policy, clock, sleep):
            return 0  # still answering the stopped alert's pushes: the reconciler plans it
        alert = addressed(alert, store.get_alert, pruned or _never)
    with_choices = choices is not None and uses_choices(alert)
    if alert.kind is AlertKind.UPDATE and choices is None:
        store.finish_planning(alert_id, clock())  # followers are known to the choices store only
        return 0
    planner = _Planner(alert, store, choices if with_choices else None, policy, clock)
    after = resume_at(alert, store.planning_cursor(alert_id), fresh)
    with Outbox("batches") as outbox:
        enqueue = partial(outbox.put, queue.enqueue_batch)
        planned, finished = _walk(planner, after, store, alert, enqueue)
    if not finished:
        return planned
    store.finish_planning(alert_id, clock())
    if choices is not None and with_choices:
        choices.settle_audience(alert_id)
    finish_if_done(store, alert_id, clock())
    log.info("planned", extra={"alert_id": alert_id, "batches": planned})
    return planned


def _walk(
    planner: _Planner,
    after: Cursor,
    store: PlanningStore,
    alert: Alert,
    enqueue: Callable[[int, int, Lane], None],
) -> tuple[int, bool]:
    """The plan's pages, each committed then handed to `enqueue`: how many, and whether the
    walk reached the end (not stopped with the alert, nor by another planner ahead of it)."""
    alert_id = alert.id
    pages = planned = 0
    while True:
        if pages % 20 == 0 and store.is_stopped(alert_id):
            log.info("planning stopped", extra={"alert_id": alert_id})
            return planned, False
        try:
            step = planner.step(after)
        except PlanningConflict:
            log.info("another planner is ahead; stopping", extra={"alert_id": alert_id})
            return planned, False
        if step is None:
            return planned, True
        batch_id, after = step
        pages += 1
        if batch_id is not None:
            planned += 1
            enqueue(batch_id, alert_id, alert.lane)


def _never(alert_id: int) -> bool:
    return False


def _take_over(
    target_id: int,
    store: PlanningStore,
    policy: DeliveryPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> bool:
    """Stop the alert a correction replaces if it is still going out (its release normally
    stopped it already); True once none of its pushes is on its way any more (a push answered
    after the correction's would put the old words back on screen: same tag)."""
    target = store.get_alert(target_id)
    if takes_over(target):
        store.stop_sending(target_id, clock())
        log.info("stopped for its correction", extra={"alert_id": target_id})
        target = store.get_alert(target_id)
    if target is None or target.status is not AlertStatus.CANCELLED:
        return True
    deadline = clock() + TAKE_OVER_WAIT_S
    while store.in_flight(target_id, clock(), policy.lease_s):
        if clock() >= deadline:
            log.warning("stopped alert still sending", extra={"alert_id": target_id})
            return False
        sleep(TAKE_OVER_POLL_S)
    return True


Step = tuple[int | None, Cursor] | None  # (the batch to push or None, the new cursor); None: done


class _Planner:
    """One run's steps through an alert's audience: id order, or the freshest-first walk and
    then the final sweep (core/freshness.py)."""

    def __init__(
        self,
        alert: Alert,
        store: PlanningStore,
        choices: ChoiceStore | None,
        policy: DeliveryPolicy,
        clock: Callable[[], float],
    ) -> None:
        self.alert, self.store, self.choices, self.clock = alert, store, choices, clock
        self.batch_size = policy.batch_size
        self.pending: list[int] = []  # the sweep's readers still to plan, in id order
        self.examined = 0  # the last id the sweep looked at

    def step(self, after: Cursor) -> Step:
        if not after.sweeping:
            if self.choices is not None:
                step = choice_step(self.alert, after, self.choices, self.batch_size, self.clock)
            else:
                step = _plain_step(self.alert, after, self.store, self.batch_size, self.clock)
            if step is not None or not after.walking:
                return step
        return self._sweep(after)

    def _sweep(self, after: Cursor) -> Step:
        if not self.pending:
            # Recomputed on each run: what a crashed or overtaken run planned is left out.
            self.pending, self.examined = self.store.unplanned_since(
                self.alert,
                after.id if after.sweeping else 0,
                sweep_since(self.alert),
                SWEEP_PAGES * self.batch_size,
            )
            if not self.pending:
                return None
        ids, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        last = Cursor(ids[-1] if self.pending else self.examined, SWEEP)
        if self.choices is not None:
            return choice_sweep_step(self.alert, after, ids, last, self.choices, self.clock)
        return self.store.add_batch(self.alert.id, ids, after, last, self.clock()), last


def _plain_step(
    alert: Alert, after: Cursor, store: PlanningStore, batch_size: int, clock: Callable[[], float]
) -> Step:
    ids, last = store.next_audience_page(alert, after, batch_size)
    if not ids:
        return None
    return store.add_batch(alert.id, ids, after, last, clock()), last


def schedule_due_retries(
    store: RecoveryStore,
    queue: TaskQueue,
    policy: DeliveryPolicy,
    clock: Callable[[], float] = time.time,
) -> int:
    """Periodic: waits live in the database, never as broker countdowns (they outlive the
    visibility timeout). Due rows become retry batches."""
    due = store.take_due_retries(clock(), 20 * policy.batch_size, policy.batch_size)
    lane_of = lanes_of(store.get_alert)
    with Outbox("retry batches") as outbox:
        for batch_id, alert_id in due:
            outbox.put(queue.enqueue_batch, batch_id, alert_id, lane_of(alert_id))
    return len(due)


def reconcile(
    store: RecoveryStore,
    queue: TaskQueue,
    policy: DeliveryPolicy,
    clock: Callable[[], float] = time.time,
) -> dict[str, int]:
    """Periodic: re-enqueue work left queued or sending too long (lost messages, dead workers)."""
    now = clock()
    stale = store.stale_alerts(now, policy.stale_after_s)
    for alert_id in stale.planned:
        finish_if_done(store, alert_id, now)  # forgotten: every batch done, nobody noticed
    with Outbox("plans") as plans:
        for alert_id in stale.replan:
            alert = store.get_alert(alert_id)
            if alert is not None:
                plans.put(queue.enqueue_plan, alert_id, alert.lane)
    batches = store.stale_batches(now, policy.stale_after_s, 1000)
    lane_of = lanes_of(store.get_alert)
    with Outbox("batches") as outbox:
        for batch_id, alert_id in batches:
            outbox.put(queue.enqueue_batch, batch_id, alert_id, lane_of(alert_id))
    if plans.sent or batches:
        log.warning("reconciled", extra={"plans": plans.sent, "batches": len(batches)})
    return {"plans": plans.sent, "batches": len(batches)}


def fire_scheduled(
    store: RecoveryStore, queue: TaskQueue, clock: Callable[[], float] = time.time
) -> int:
    """Periodic: scheduled alerts whose time has come move to queued and are planned (by the
    reconciler, if the broker does not take them now)."""
    fired = 0
    with Outbox("scheduled plans") as outbox:
        for alert_id in store.due_scheduled(clock()):
            alert = store.get_alert(alert_id)
            if alert is not None:
                outbox.put(queue.enqueue_plan, alert_id, alert.lane)
                fired += 1
    return fired


# Delivering one batch lives in core/batch.py; these names stay importable from here.
from core.batch import BatchReport, Finishing, _messages, deliver_batch  # noqa: E402

__all__ = [
    "BatchReport",
    "DeliveryPolicy",
    "Finishing",
    "_messages",
    "deliver_batch",
    "fire_scheduled",
    "plan_fanout",
    "reconcile",
    "schedule_due_retries",
]
