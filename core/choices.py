"""Readers' choices in the fan-out: which page readers are pushed now, held or skipped.

The database sorts each audience page (core/adapters/choices_sql.py); the planner commits the
page, and the beat's retry round releases held readers when their quiet hours end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.freshness import Cursor
from core.model import Alert, AlertKind, Lane
from core.outbox import Outbox
from core.ports import TaskQueue
from core.quiet import waits_for_readers

log = logging.getLogger("newsflash.delivery")
MAX_EXTRA_PAGES = 4  # a page mostly asleep is topped up at most this often


@dataclass
class AudiencePage:
    """One keyset page of an alert's audience, sorted by the readers' choices."""

    last: Cursor  # the planning cursor after this page
    send: list[int] = field(default_factory=list)
    held: list[tuple[int, float]] = field(default_factory=list)  # (subscription, release time)
    expired: list[int] = field(default_factory=list)  # quiet until after the alert's TTL
    capped: list[int] = field(default_factory=list)
    counted: list[int] = field(default_factory=list)  # readers with a cap who get this alert

    @property
    def rows(self) -> int:
        return len(self.send) + len(self.held) + len(self.expired) + len(self.capped)

    def merged(self, later: AudiencePage) -> AudiencePage:
        """This page and the next one (read after it) as one."""
        return AudiencePage(
            later.last,
            self.send + later.send,
            self.held + later.held,
            self.expired + later.expired,
            self.capped + later.capped,
            self.counted + later.counted,
        )


class ChoiceStore(Protocol):
    def next_choice_page(
        self, alert: Alert, after: Cursor, limit: int, now: float
    ) -> AudiencePage | None: ...
    def choice_page_of(
        self, alert: Alert, ids: list[int], last: Cursor, now: float
    ) -> AudiencePage:
        """These readers (those still in the audience), sorted by their choices."""
        ...

    def add_choice_page(
        self, alert: Alert, after: Cursor, page: AudiencePage, now: float
    ) -> int | None: ...
    def settle_audience(self, alert_id: int) -> None: ...
    def release_held(self, now: float, limit: int, batch_size: int) -> list[tuple[int, int]]: ...


def uses_choices(alert: Alert) -> bool:
    """Non-breaking alerts honour quiet hours and caps; story updates go to followers only."""
    return waits_for_readers(alert) or alert.kind is AlertKind.UPDATE


def choice_step(
    alert: Alert,
    after: Cursor,
    choices: ChoiceStore,
    batch_size: int,
    clock: Callable[[], float],
) -> tuple[int | None, Cursor] | None:
    """Plan one batch: (the batch to push now or None, the new cursor); None when done.

    Held and capped readers leave gaps in a page, so pages are read until the batch to push is
    about full: a batch's fixed costs (claim, load, task, signing) stay spread over as many
    pushes as with no choices at all."""
    now = clock()
    page = choices.next_choice_page(alert, after, batch_size, now)
    if page is None:
        return None
    for _ in range(MAX_EXTRA_PAGES):
        missing = batch_size - len(page.send)
        if missing <= batch_size // 20:
            break
        # About as many rows as should hold the pushes still missing, at this page's rate.
        rate = max(len(page.send), 1) / max(page.rows, 1)
        limit = min(batch_size, int(missing / rate) + 1)
        more = choices.next_choice_page(alert, page.last, limit, now)
        if more is None:
            break
        page = page.merged(more)
    return _commit(alert, after, page, choices, now)


def choice_sweep_step(
    alert: Alert,
    after: Cursor,
    ids: list[int],
    last: Cursor,
    choices: ChoiceStore,
    clock: Callable[[], float],
) -> tuple[int | None, Cursor]:
    """Plan the final sweep's next readers (core/freshness.py) with their choices applied."""
    now = clock()
    return _commit(alert, after, choices.choice_page_of(alert, ids, last, now), choices, now)


def _commit(
    alert: Alert, after: Cursor, page: AudiencePage, choices: ChoiceStore, now: float
) -> tuple[int | None, Cursor]:
    batch_id = choices.add_choice_page(alert, after, page, now)
    if page.held or page.capped or page.expired:
        log.info(
            "readers' choices",
            extra={
                "alert_id": alert.id,
                "held": len(page.held),
                "expired": len(page.expired),
                "capped": len(page.capped),
            },
        )
    return batch_id, page.last


def release_held(
    choices: ChoiceStore,
    queue: TaskQueue,
    batch_size: int,
    lane_of: Callable[[int], Lane],
    clock: Callable[[], float],
) -> int:
    """Periodic (with the retries): readers whose quiet hours ended get their held alerts."""
    released = choices.release_held(clock(), 20 * batch_size, batch_size)
    # Each batch row is committed: one the broker does not take, the reconciler sends later.
    with Outbox("released batches") as outbox:
        for batch_id, alert_id in released:
            outbox.put(queue.enqueue_batch, batch_id, alert_id, lane_of(alert_id))
    return len(released)
