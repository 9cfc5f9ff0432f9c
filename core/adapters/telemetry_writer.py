"""Telemetry nobody waits for, written to Redis by one thread per process.

A delivery process counts its pushes per second, keeps a batch's first errors and marks the
queue it took a task from. Those writes used to happen where they were made: on the sender's
event loop (the rate buckets, about twice a second) and on the task's thread (errors, marks).
With a Redis that accepts connections and never answers, each one waited its socket timeout,
and a 2,000-reader fan-out on another broker had not finished after four minutes
(tests/reliability/test_redis_hung.py).

Now they go to this writer, which merges what waits (counts added up per second, the newest
errors, the latest mark per queue) and sends it from its own thread. After a failure it waits
AWAY_S before it asks again, merging what arrives meanwhile, and says so once per outage rather
than once per write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from core.adapters.hosts import AWAY_S  # the host store's rule for a failing Redis, shared
from core.adapters.telemetry import ERRORS_KEEP, RedisTelemetry

log = logging.getLogger(__name__)

DRAIN_S: Final = 0.5  # the most a finishing batch waits for its counts to be written
# A database refusing writes refuses every request; one note a second per process says as much.
REFUSED_EVERY_S: Final = 1.0


class TelemetryWriter:
    """Rate buckets, recent errors, queue marks and the database's refusals for `telemetry`,
    sent by a thread of its own (started on first use, again in a forked child)."""

    def __init__(
        self,
        telemetry: RedisTelemetry,
        away_s: float = AWAY_S,
    ) -> None:
        self.telemetry = telemetry
        self.away_s = away_s
        self._pid = -1
        self._here()

    def _here(self) -> None:
        """Fresh state in a new process: a forked child inherits neither the parent's thread
        nor, safely, its lock (held by that thread at the fork, it would never be released)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Condition()
        self._counts: dict[int, Counter[str]] = {}
        self._errors: list[dict[str, Any]] = []
        self._marks: dict[str, float] = {}
        self._refused: dict[str, float] = {}
        self._refused_noted: dict[str, float] = {}
        self._writing = False
        self._failing = False
        self._thread: threading.Thread | None = None

    # -- what callers hand over (never blocks on Redis) ---------------------------------------
    def add_counts(self, per_second: Mapping[int, Counter[str]]) -> None:
        if not per_second:
            return
        self._here()
        with self._lock:
            for second, counts in per_second.items():
                self._counts.setdefault(second, Counter()).update(counts)
            self._wake()

    def add_errors(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        self._here()
        with self._lock:
            self._errors = [*self._errors, *entries][-ERRORS_KEEP:]
            self._wake()

    def mark_consumed(self, queue: str, at: float) -> None:
        self._here()
        with self._lock:
            self._marks[queue] = max(at, self._marks.get(queue, at))
            self._wake()

    def note_refused(self, reason: str, at: float) -> None:
        """The database refused a write (a full disk, read-only): /ops and beat's alarms learn
        of it from every process, not only from the web's metric."""
        self._here()
        with self._lock:
            if at - self._refused_noted.get(reason, float("-inf")) < REFUSED_EVERY_S:
                return
            self._refused_noted[reason] = at
            self._refused[reason] = max(at, self._refused.get(reason, at))
            self._wake()

    def drain(self, timeout_s: float = DRAIN_S) -> bool:
        """Wait (at most timeout_s) until what was handed over is written; at once while Redis
        is failing. True when nothing is left."""
        self._here()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending() or self._writing:
                left = deadline - time.monotonic()
                if self._failing or left <= 0:
                    return False
                self._lock.wait(left)
        return True

    @property
    def failing(self) -> bool:
        return self._failing

    # -- the thread ---------------------------------------------------------------------------
    def _pending(self) -> bool:
        return bool(self._counts or self._errors or self._marks or self._refused)

    def _wake(self) -> None:
        # Called with the lock held.
        if self._thread is None or not self._thread.is_alive():
            self._writing, self._failing = False, False
            self._thread = threading.Thread(
                target=self._run, name="newsflash-telemetry", daemon=True
            )
            self._thread.start()
        self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending():
                    self._lock.wait()
                counts, errors, marks = self._counts, self._errors, self._marks
                refused = self._refused
                self._counts, self._errors, self._marks, self._refused = {}, [], {}, {}
                self._writing = True
            error = self._write(counts, errors, marks, refused)
            with self._lock:
                self._writing = False
                if error is None:
                    if self._failing:
                        log.info("telemetry reaches Redis again")
                    self._failing = False
                else:
                    self._keep(marks, refused)
                    if not self._failing:
                        log.warning(
                            "telemetry not written; Redis not asked again for %.0f s: %s",
                            self.away_s,
                            error,
                        )
                    self._failing = True
                self._lock.notify_all()
            if error is not None:
                time.sleep(self.away_s)

    def _write(
        self,
        counts: dict[int, Counter[str]],
        errors: list[dict[str, Any]],
        marks: dict[str, float],
        refused: dict[str, float],
    ) -> str | None:
        try:
            self.telemetry.add_counts(counts)
            self.telemetry.add_errors(errors)
            for queue, at in marks.items():
                self.telemetry.mark_consumed(queue, at)
            self.telemetry.note_refused(refused)
        except Exception as exc:
            return type(exc).__name__
        return None

    def _keep(self, marks: dict[str, float], refused: dict[str, float]) -> None:
        # Called with the lock held. A write that failed may have reached Redis all the same (a
        # timeout says nothing of what the server did with it; a frozen Redis runs it when it
        # thaws): counts and errors sent again could count twice, so only the marks and the
        # refusals (a later time simply wins) go back. What arrives while Redis is away waits, merged, for it.
        for queue, at in marks.items():
            self._marks[queue] = max(at, self._marks.get(queue, at))
        for reason, at in refused.items():
            self._refused[reason] = max(at, self._refused.get(reason, at))
