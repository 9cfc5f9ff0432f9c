"""What runs beside a batch's sender: the cancel check and the heartbeat that keeps it claimed."""

from __future__ import annotations

import logging
import threading
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


class Heartbeat:
    """Marks the batch alive while its sender waits. Results move the heartbeat too, but a batch
    whose every request waits on a slow push service records nothing for up to a request
    deadline; without this the reconciler would take it for dead and send it a second time."""

    def __init__(
        self, store: LedgerStore, batch_id: int, stale_after_s: float, clock: Callable[[], float]
    ) -> None:
        self._done = threading.Event()
        self._store, self._batch_id, self._clock = store, batch_id, clock
        self._every_s = max(0.2, stale_after_s / 4)
        self._thread = threading.Thread(target=self._run, name="batch-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._every_s):
            try:
                self._store.heartbeat(self._batch_id, self._clock())
            except Exception:
                log.warning("batch heartbeat failed", extra={"batch_id": self._batch_id})

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
