"""Beat's fast sweep (every quarter of a batch lease): dead workers' batches and a broker that
forgot its messages are both put right within seconds, not after NEWSFLASH_STALE_AFTER_S.

- An alert published while the broker was down (its plan task was never sent) and not started
  after a lease gets its plan task again.
- A sending batch whose lease ran out (its worker was SIGKILLed, or lost its database) goes back
  to queued and gets a new delivery task.
- A broker that came back empty (restarted without its append-only file, flushed, replaced)
  no longer holds the tasks of queued batches and alerts. The broker keeps a marker key next to
  its queues; when the marker is gone, so is everything that was queued with it, and every
  queued batch and unplanned alert is enqueued again at once. Extra copies of a task are
  harmless: a claim is conditional, so the second copy finds the batch taken and sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.leases import BatchLeases
from core.model import Alert
from core.outbox import Outbox, lanes_of
from core.ports import TaskQueue

log = logging.getLogger("newsflash.delivery")

LIMIT = 5000


class BrokerMemory(Protocol):
    def forgot(self) -> bool:
        """True when the broker lost what it held since the marker was last set (the marker
        is set again by the same call). False when it cannot tell."""
        ...


class AlertLookup(Protocol):
    def get_alert(self, alert_id: int) -> Alert | None: ...


@dataclass
class Reclaimed:
    expired: list[tuple[int, int]] = field(default_factory=list)  # (batch id, alert id)
    batches: int = 0  # delivery tasks sent
    plans: int = 0  # plan tasks sent

    def counts(self) -> dict[str, int]:
        return {"expired": len(self.expired), "batches": self.batches, "plans": self.plans}


def reclaim_all(
    leases: BatchLeases,
    alerts: AlertLookup,
    queue: TaskQueue,
    broker: BrokerMemory,
    lease_s: float,
    now: float,
) -> Reclaimed:
    """Re-enqueue batches with a lapsed lease; after a broker lost its memory, all queued work."""
    lane_of = lanes_of(alerts.get_alert)
    expired = leases.expired(now, lease_s, LIMIT)
    batches = _send(expired, lambda b, a: queue.enqueue_batch(b, a, lane_of(a)), "batches")
    # Published while the broker was down: its plan task was never sent.
    stalled = leases.stalled_plans(now, lease_s, LIMIT)
    plans = _send(
        [(a, a) for a in stalled], lambda a, _: queue.enqueue_plan(a, lane_of(a)), "plans"
    )
    if broker.forgot():
        queued, unplanned = leases.unqueued(LIMIT)
        batches += _send(queued, lambda b, a: queue.enqueue_batch(b, a, lane_of(a)), "batches")
        plans += _send(
            [(a, a) for a in unplanned], lambda a, _: queue.enqueue_plan(a, lane_of(a)), "plans"
        )
        # A new broker (the first start, or a fresh Redis database) has no marker either:
        # with nothing queued, nothing was lost, and there is nothing to warn about.
        if queued or unplanned:
            log.warning(
                "broker came back empty; queued work sent again",
                extra={"batches": len(queued), "plans": len(unplanned)},
            )
    if expired:
        log.warning("batch leases ran out; batches queued again", extra={"count": len(expired)})
    return Reclaimed(expired, batches, plans)


def _send(items: list[tuple[int, int]], enqueue: Callable[[int, int], None], what: str) -> int:
    # Each is still in the database: one the broker does not take, the next sweep sends.
    with Outbox(what) as outbox:
        for first, second in items:
            outbox.put(enqueue, first, second)
    return outbox.sent
