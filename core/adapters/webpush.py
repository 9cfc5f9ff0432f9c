"""The production push sender: one event loop per worker process that batches feed, with a
per-host in-flight window, kept-alive HTTP/1.1 connections and a guarded connect.

Wire detail lives beside it: encryption and VAPID in `push_crypto`, the connection, the routes
and the address checks in `http11`, the windows in `window`, a batch's state in `send_job`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.adapters.fdlimit import slots_that_fit
from core.adapters.http11 import (
    ProtocolFault,
    RefusedAddress,
    Route,
    Routes,
    literal_address,
    system_lookup,
)
from core.adapters.push_client import PushClient, Slot
from core.adapters.push_crypto import VapidSigner, encrypt, encrypt_aes128gcm
from core.adapters.send_job import HAND_OFF_AFTER_S, Item, SendJob
from core.adapters.window import AdaptiveWindow, FixedWindow, Window, judge
from core.ports import HostHealth, PushMessage, PushResult

__all__ = [
    "Http11PushSender",
    "ProtocolFault",
    "RefusedAddress",
    "SendJob",
    "SenderConfig",
    "VapidSigner",
    "encrypt",
    "encrypt_aes128gcm",
    "literal_address",
]

log = logging.getLogger("newsflash.webpush")

WATCHDOG_TICK_S = 0.1
LAG_GAIN = 0.25  # the event loop's lag, smoothed over about four watchdog ticks
MAX_HOSTS = 10_000


@dataclass(frozen=True)
class SenderConfig:
    concurrency: int = 1000
    concurrency_per_host: int = 1000
    # True: each host's window sizes itself up to concurrency_per_host (core/adapters/window.py);
    # False: a fixed window of concurrency_per_host.
    adaptive: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    deadline_s: float = 15.0
    allow_loopback: bool = False
    ca_file: str | None = None
    # uvloop's event loop and transports take ~10 % less CPU per push than asyncio's (measured
    # in the fan-out benchmark: 372-384 vs 395-426 µs per delivery, sink included).
    event_loop: str = "asyncio"
    # Batches being handed over in one process, and open at all (the rest only wait for their
    # last answers: a 2 s tail, a slow host). They bound threads and ledger buffers, not the
    # requests in flight; a lingering batch must not keep the process from its next one.
    max_open_jobs: int = 4
    max_lingering_jobs: int = 16


class _Lane:
    """One push host's queue (from every open batch, in order), its in-flight count, its window."""

    __slots__ = ("in_flight", "queue", "ready", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.queue: deque[Item] = deque()
        self.in_flight = 0
        self.ready = False


def _new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Http11PushSender:
    """Keep-alive HTTP/1.1 on asyncio protocols, one event loop per worker process on its own
    thread, fed by the batches (`submit`) and reporting each answer as it arrives.

    Because the loop outlives a batch, a worker process keeps its windows full across batches:
    the task hands its batch over and takes the next one while the last answers of the previous
    one (a 2 s tail, a slow host) are still in flight. One queue per push host holds every open
    batch's pushes in order, each drained within that host's window, round robin between the
    hosts with room, so a slow host never holds a fast one's slots.

    A general client (aiohttp) cost more CPU per push than the encryption; push requests are
    all alike, so this client writes each as one buffer and parses only the status line,
    Retry-After and the body framing. Connect and read timeouts plus an overall deadline, no
    redirects, response bodies read only up to a small cap, every resolved address checked
    before a connection is attempted.
    """

    def __init__(
        self,
        signer: VapidSigner,
        config: SenderConfig,
        hosts: HostHealth | None = None,
        lookup: Callable[[str, int], Sequence[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.client = self._client(signer, hosts, lookup or system_lookup, clock)
        self.routes = Routes(config.allow_loopback)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._windows: dict[str, Window] = {}
        self._lanes: dict[str, _Lane] = {}
        self._ready: deque[_Lane] = deque()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._woken = 0  # slots woken that have not yet looked for their next push
        self._slots: list[Slot] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._open: set[SendJob] = set()
        self._lag_s = 0.0
        self._room = threading.Condition()
        self._starting = threading.Lock()

    def _client(
        self,
        signer: VapidSigner,
        hosts: HostHealth | None,
        lookup: Callable[[str, int], Sequence[str]],
        clock: Callable[[], float],
    ) -> PushClient:
        c = self.config
        return PushClient(
            signer,
            hosts,
            lookup,
            clock,
            connect_timeout_s=c.connect_timeout_s,
            read_timeout_s=c.read_timeout_s,
            deadline_s=c.deadline_s,
            allow_loopback=c.allow_loopback,
            ca_file=c.ca_file,
        )

    # -- what the batches call (any thread) ---------------------------------------------
    def submit(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> SendJob:
        """Queue a batch; returns at once. `on_result` runs on the sender's thread."""
        job = SendJob(len(messages), on_result, should_stop)
        if not messages:
            job.handed_off.set()
            job.done.set()
            return job
        loop = self._ensure_loop()
        with self._room:
            self._open.add(job)
        loop.call_soon_threadsafe(self._enqueue, job, list(messages))
        return job

    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        """Send a batch and wait for its last answer."""
        self.submit(messages, on_result, should_stop).wait()

    def wait_for_room(self, timeout_s: float | None = None) -> bool:
        """Until fewer than `max_open_jobs` batches are being handed over in this process and
        fewer than `max_lingering_jobs` are open at all."""
        c = self.config

        def room() -> bool:
            sending = sum(1 for job in self._open if not job.handed_off.is_set())
            return sending < c.max_open_jobs and len(self._open) < c.max_lingering_jobs

        with self._room:
            return self._room.wait_for(room, timeout_s)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Until every open batch has its last answer (False: still some after the timeout)."""
        with self._room:
            return self._room.wait_for(lambda: not self._open, timeout_s)

    def windows(self) -> dict[str, tuple[int, int, int]]:
        """(window, in flight, smoothed answer ms) per host, and "loop lag" ms, for the log."""
        lanes = dict(self._lanes)  # a copy: the sender's thread may add a host meanwhile
        return {"loop lag": (0, 0, round(self._lag_s * 1000))} | {
            host: (
                lane.window.size,
                lane.in_flight,
                round(getattr(lane.window, "smoothed_rtt", 0.0) * 1000),
            )
            for host, lane in lanes.items()
        }

    def window_size(self, host: str) -> int | None:
        """Requests this process lets be in flight to `host` now (None: not sent to yet)."""
        window = self._windows.get(host)
        return None if window is None else window.size

    # -- the loop and its thread --------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._starting:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            return self._start_loop()

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        # First use, or a forked child holding its parent's object: a loop of its own.
        loop = _new_event_loop(self.config.event_loop)
        self._loop, self._pid = loop, os.getpid()
        self.client.idle, self._lanes, self._ready, self._waiting = {}, {}, deque(), deque()
        self._woken = 0
        with self._room:
            self._open = set()
        self._thread = threading.Thread(target=loop.run_forever, name="push-sender", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result()
        return loop

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._slots = [Slot() for _ in range(slots_that_fit(self.config.concurrency))]
        for slot in self._slots:
            slot.task = loop.create_task(self._run_slot(slot))
        self._watchdog = loop.create_task(self._watch())

    def _enqueue(self, job: SendJob, messages: list[PushMessage]) -> None:
        job.enqueued = time.monotonic()
        for message in messages:
            route, target = self.routes(message.endpoint)
            lane = self._lane(route.host if route is not None else "unknown")
            lane.queue.append((job, message, route, target))
            if not lane.ready:
                lane.ready = True
                self._ready.append(lane)
        self._wake(self._room_to_fill())

    def _lane(self, host: str) -> _Lane:
        lane = self._lanes.get(host)
        if lane is None:
            if len(self._lanes) >= MAX_HOSTS:  # hostile endpoints must not grow it unbounded
                self._lanes = {k: v for k, v in self._lanes.items() if v.queue or v.in_flight}
            lane = self._lanes[host] = _Lane(self._window(host))
        return lane

    def _window(self, host: str) -> Window:
        window = self._windows.get(host)
        if window is None:
            if len(self._windows) >= MAX_HOSTS:
                self._windows = {}
            limit = self.config.concurrency_per_host
            window = self._windows[host] = (
                AdaptiveWindow(limit) if self.config.adaptive else FixedWindow(limit)
            )
        return window

    def _next(self) -> tuple[_Lane, Item] | None:
        """The next push a slot may start: round robin between hosts with work and room."""
        ready = self._ready
        while ready:
            lane = ready[0]
            if not (lane.queue and lane.in_flight < lane.window.size):
                ready.popleft()
                lane.ready = False
                continue
            ready.rotate(-1)
            item = lane.queue.popleft()
            job = item[0]
            job.queued -= 1
            if job.stopped or job.should_stop():
                job.stopped = True
                self._settle(job, 1)
                continue
            if job.queued == 0:
                self._hand_off(job)
            return lane, item
        return None

    def _room_to_fill(self) -> int:
        """Pushes that could start now and that no slot is already on its way to take."""
        room = 0
        for lane in self._ready:
            free = lane.window.size - lane.in_flight
            if free > 0:
                room += min(free, len(lane.queue))
        return room - self._woken

    def _wake(self, count: int) -> None:
        """Wake `count` idle slots. Only as many as there are pushes to start: a slot woken
        for nothing still costs a turn of the loop, and with full windows that had been 1.6
        per push (docs/capacity.md, ninth session)."""
        while count > 0 and self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                self._woken += 1
                count -= 1

    async def _run_slot(self, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        while True:
            picked = self._next()
            if picked is None:
                future = loop.create_future()
                self._waiting.append(future)
                await future
                self._woken -= 1
                continue
            lane, (job, message, route, target) = picked
            lane.in_flight += 1
            before = lane.window.size
            try:
                result = await self.client.send(message, route, target, slot, job.heads)
            except Exception:
                log.exception("push failed unexpectedly", extra={"push_host": lane_host(route)})
                result = PushResult(
                    message.subscription_id, lane_host(route), None, error="connect"
                )
            finally:
                lane.in_flight -= 1
            # Answer times include this process's own loop lag, on purpose
            # (docs/capacity.md, "Measured on 1 December").
            judge(lane.window, result, lane.in_flight + 1, self._lag_s)
            if not lane.ready and lane.queue and lane.in_flight < lane.window.size:
                lane.ready = True
                self._ready.append(lane)
            # This slot takes the next request itself; a grown window may need more slots.
            if lane.window.size > before:
                self._wake(self._room_to_fill() - 1)
            self._report(job, result)

    def _report(self, job: SendJob, result: PushResult) -> None:
        if job.error is None:
            try:
                job.context.run(job.on_result, result)
            except Exception as exc:  # the ledger failed: the batch stops and says why
                job.error = exc
                self._stop(job)
        self._settle(job, 1)

    def _hand_off(self, job: SendJob) -> None:
        job.handed_off.set()
        with self._room:
            self._room.notify_all()

    def _settle(self, job: SendJob, count: int) -> None:
        job.left -= count
        if job.left <= 0 and not job.done.is_set():
            job.handed_off.set()
            job.done.set()
            with self._room:
                self._open.discard(job)
                self._room.notify_all()

    def _stop(self, job: SendJob) -> None:
        """Drop the batch's pushes no slot has taken yet (what is in flight still reports)."""
        job.stopped = True
        if job.queued <= 0:
            return
        dropped = 0
        for lane in self._lanes.values():
            if any(item[0] is job for item in lane.queue):
                kept = deque(item for item in lane.queue if item[0] is not job)
                dropped += len(lane.queue) - len(kept)
                lane.queue = kept
        job.queued -= dropped
        self._settle(job, dropped)

    async def _watch(self) -> None:
        """Enforces every request's read timeout and overall deadline from one timer, and stops
        cancelled batches whose pushes wait behind a full window.

        Two `asyncio.timeout` blocks per push (a timer handle each, scheduled and cancelled)
        cost more CPU than the HTTP parsing; a slot past its deadline has its task cancelled
        here instead, and `_send_one` turns that cancellation into a timeout result. Deadlines
        are met within WATCHDOG_TICK_S."""
        tick = min(WATCHDOG_TICK_S, self.config.read_timeout_s / 10, self.config.deadline_s / 10)
        while True:
            asleep = time.monotonic()
            await asyncio.sleep(tick)
            now = time.monotonic()
            # How late the loop runs what is due (the hand-off log shows it).
            self._lag_s += (max(now - asleep - tick, 0.0) - self._lag_s) * LAG_GAIN
            self.client.prune_idle(now, len(self._slots))
            for slot in self._slots:
                if (
                    slot.deadline is not None
                    and now >= slot.deadline
                    and not slot.expired
                    and slot.task is not None
                    and not slot.task.done()
                ):
                    slot.expired = True
                    slot.task.cancel()
            with self._room:
                waiting = [job for job in self._open if job.queued > 0 and not job.stopped]
            for job in waiting:
                if job.should_stop():
                    self._stop(job)
                elif self._waiting and job.enqueued and now - job.enqueued >= HAND_OFF_AFTER_S:
                    # Slots are idle while this batch's pushes wait for their hosts' windows
                    # (a slow or throttled host): the process takes its next batch meanwhile.
                    self._hand_off(job)

    # -- the end ------------------------------------------------------------------------
    def close(self) -> None:
        """Wait (up to a request deadline) for open batches, then stop the loop and its thread."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid() or loop.is_closed():
            return
        with self._room:
            self._room.wait_for(lambda: not self._open, self.config.deadline_s + 1)
            for job in self._open:  # never answered: their waiters must not hang
                job.error = job.error or RuntimeError("the sender was closed")
                job.handed_off.set()
                job.done.set()
            self._open = set()
            self._room.notify_all()
        asyncio.run_coroutine_threadsafe(self._shut(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    async def _shut(self) -> None:
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        if self._watchdog is not None:
            tasks.append(self._watchdog)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.client.close_idle()
        self._slots, self._watchdog = [], None
        # Let the transports (a failed TLS handshake's too) finish closing before the loop
        # goes: that takes a few turns of the loop.
        await asyncio.sleep(0.05)


def lane_host(route: Route | None) -> str:
    return route.host if route is not None else "unknown"
