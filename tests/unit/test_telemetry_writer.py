"""The telemetry writer at its port: a RedisTelemetry stand-in that answers, fails or hangs."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import pytest

from core.adapters.telemetry_writer import TelemetryWriter


class Telemetry:
    """Records what reached "Redis"; `broken` raises, `gate` holds a write until set."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[int, str]] = Counter()
        self.errors: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self.refused: dict[str, float] = {}
        self.broken = False
        self.gate = threading.Event()
        self.gate.set()
        self.writes = 0

    def _call(self) -> None:
        self.gate.wait()
        self.writes += 1
        if self.broken:
            raise TimeoutError("Timeout reading from socket")

    def add_counts(self, per_second: dict[int, Counter[str]]) -> None:
        if per_second:
            self._call()
        for second, counts in per_second.items():
            for field, n in counts.items():
                self.counts[(second, field)] += n

    def add_errors(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            self._call()
        self.errors.extend(entries)

    def mark_consumed(self, queue: str, now: float) -> None:
        self._call()
        self.marks[queue] = now

    def note_refused(self, refused: dict[str, float]) -> None:
        if refused:
            self._call()
        for reason, at in refused.items():
            self.refused[reason] = max(at, self.refused.get(reason, at))


def writer_of(telemetry: Telemetry, away_s: float = 0.2) -> TelemetryWriter:
    return TelemetryWriter(telemetry, away_s=away_s)  # type: ignore[arg-type]


def test_handing_over_never_waits_for_redis_and_what_waits_is_merged() -> None:
    redis = Telemetry()
    writer = writer_of(redis)
    redis.gate.clear()  # Redis hangs: the first write waits on the writer's thread
    started = time.monotonic()
    writer.add_counts({100: Counter({"delivered": 3, "alert:7": 3})})
    for n in range(1000):
        writer.add_counts({100 + n % 2: Counter({"delivered": 1})})
    writer.add_errors([{"n": 1}])
    writer.mark_consumed("newsflash.breaking", 5.0)
    writer.mark_consumed("newsflash.breaking", 4.0)  # older: the later mark stays
    assert time.monotonic() - started < 0.5
    assert writer.drain(0.1) is False  # still held
    redis.gate.set()
    assert writer.drain(2.0) is True
    assert redis.counts[(100, "delivered")] == 503 and redis.counts[(101, "delivered")] == 500
    assert redis.counts[(100, "alert:7")] == 3
    assert redis.errors == [{"n": 1}] and redis.marks == {"newsflash.breaking": 5.0}
    assert redis.writes <= 4  # the first write, then everything else merged into one round


def test_a_failing_redis_is_left_alone_for_a_while_then_gets_what_arrived_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = Telemetry()
    writer = writer_of(redis, away_s=0.3)
    redis.broken = True
    with caplog.at_level(logging.INFO, logger="core.adapters.telemetry_writer"):
        writer.add_counts({1: Counter({"delivered": 5})})
        writer.mark_consumed("newsflash.routine", 9.0)
        time.sleep(0.1)
        assert writer.failing
        assert writer.drain(5.0) is False  # at once: nobody waits on a failing Redis
        for _ in range(50):  # arrives while Redis is away: kept and merged, not asked
            writer.add_counts({2: Counter({"delivered": 1})})
        writes_while_away = redis.writes
        time.sleep(0.1)
        assert redis.writes == writes_while_away
        redis.broken = False
        assert _eventually(lambda: not writer.failing and writer.drain(0.1))
    # The failed write may have reached Redis all the same: its counts are not sent again
    # (they could count twice); the mark is (a later time simply wins).
    assert (1, "delivered") not in redis.counts
    assert redis.counts[(2, "delivered")] == 50
    assert redis.marks == {"newsflash.routine": 9.0}
    said = [r.getMessage() for r in caplog.records]
    assert sum("telemetry not written" in m for m in said) == 1, said  # once per outage
    assert said[-1] == "telemetry reaches Redis again"


def test_a_database_refusing_every_request_is_noted_once_a_second_and_kept_through_an_outage() -> (
    None
):
    """Every request fails alike while the disk is full: a note a second per process says it.
    Notes are only times (the latest wins), so one that may not have arrived is sent again."""
    redis = Telemetry()
    writer = writer_of(redis, away_s=0.2)
    for n in range(1000):  # a flood of refusals over 0.999 s: one note
        writer.note_refused("disk", 50.0 + n / 1000)
    writer.note_refused("read_only", 50.5)  # another kind has its own second
    assert writer.drain(2.0)
    assert redis.refused == {"disk": 50.0, "read_only": 50.5}
    writes = redis.writes
    writer.note_refused("disk", 51.0)  # the next second: noted again
    assert writer.drain(2.0) and redis.refused["disk"] == 51.0 and redis.writes == writes + 1

    redis.broken = True
    writer.note_refused("disk", 53.0)
    assert _eventually(lambda: writer.failing)
    redis.broken = False
    assert _eventually(lambda: not writer.failing and writer.drain(0.1))
    assert redis.refused["disk"] == 53.0


def _eventually(check: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_forked_child_writes_with_a_thread_and_a_lock_of_its_own() -> None:
    """Celery's prefork children are forked: the parent's writer thread does not exist there,
    and its lock may have been held at the fork."""
    import os

    redis = Telemetry()
    writer = writer_of(redis)
    writer.add_counts({1: Counter({"delivered": 1})})
    assert writer.drain(2.0)
    read, write = os.pipe()
    held, done = threading.Event(), threading.Event()

    def hold() -> None:  # the lock held by another thread (the writer's) at the fork
        with writer._lock:
            held.set()
            done.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        ok = False
        try:
            writer.add_counts({2: Counter({"delivered": 2})})
            ok = writer.drain(2.0) and redis.counts[(2, "delivered")] == 2
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    done.set()
    holder.join()
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
