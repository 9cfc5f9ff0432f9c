"""What runs beside a batch's sender: the cancel check (the lease is in core/leases.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from core.ports import LedgerStore

log = logging.getLogger("newsflash.delivery")


@dataclass
class StopCheck:
    """Whether the alert was cancelled, asked on the writer thread at most once an interval.

    Non-blocking: the answer of the previous check is used while a new one is asked for, so
    the sender's event loop never waits on the database.
    """

    store: LedgerStore
    alert_id: int
    writer: Executor
    interval_s: float
    clock: Callable[[], float]
    stopped: bool = False
    last_check: float = field(init=False)
    pending: Future[bool] | None = None

    def __post_init__(self) -> None:
        self.last_check = self.clock()

    def should_stop(self) -> bool:
        t = self.clock()
        if t - self.last_check >= self.interval_s:
            pending = self.pending
            if pending is None or pending.done():
                if pending is not None and pending.exception() is None:
                    self.stopped = pending.result()
                self.pending = self.writer.submit(self.store.is_stopped, self.alert_id)
                self.last_check = t
        return self.stopped
