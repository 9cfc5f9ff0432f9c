"""Deliver one batch exactly once: claim it, push it, record every answer in the ledger."""

from __future__ import annotations

import contextvars
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, cast

from core.completion import finish_if_done
from core.leases import BatchLeases, Lease, StoreLeases, new_owner
from core.model import Alert, AlertStatus, Batch, LedgerStatus, Target
from core.outcomes import Decision, Outcome, backoff_s, classify
from core.payload import PayloadTemplate, build_payload, payload_template, topic_header
from core.ports import (
    HostHealth,
    LedgerEntry,
    LedgerStore,
    PipelinedSender,
    PushMessage,
    PushResult,
    PushSender,
    SendJob,
)
from core.receipts import Receipts
from core.rejections import SETTLE_S, Verdict
from core.targets import owed_targets
from core.ttl import ends_at, released_at, within_ttl
from core.utm import UtmTags, click_through
from core.watchers import StopCheck

if TYPE_CHECKING:
    from core.delivery import DeliveryPolicy

log = logging.getLogger("newsflash.delivery")

WRITE_ATTEMPTS = 4
PIPELINED_FLUSH_S = 1.0  # how often a batch sharing the process's writer writes a chunk


@dataclass
class BatchReport:
    batch_id: int
    alert_id: int = 0
    # False: nothing was sent because another worker holds the batch, it is already finished,
    # or its alert no longer exists.
    claimed: bool = True
    # True: the lease ran out or was taken over mid-send; this worker stopped and left the
    # batch to its new owner (what it had sent is recorded).
    lost: bool = False
    sent: int = 0
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0  # subscriptions gone between planning and sending
    stopped: bool = False
    # True: the sender took the batch and its last answers are recorded on another thread
    # (the counts here are not the batch's; the finished report goes to `on_complete`).
    handed_off: bool = False
    outcomes: dict[str, int] = field(default_factory=dict)


class _Recorder:
    """Collects push results and writes them to the ledger in small chunks.

    Chunked writes bound the duplicates a crash can cause (at most the unrecorded chunks) while
    keeping the database at one round trip per chunk, not one per delivery. With a writer the
    chunks are written on its thread, so the sender's event loop never waits on the database;
    at most two chunks are ever in flight, so a slow database slows the sending down instead
    of letting unrecorded results pile up.
    """

    def __init__(
        self,
        alert: Alert,
        batch_id: int,
        attempts: dict[int, int],
        store: LedgerStore,
        hosts: HostHealth,
        policy: DeliveryPolicy,
        clock: Callable[[], float],
        rng: random.Random,
        observe: Callable[[PushResult, Decision], None] | None,
        writer: Executor | None = None,
    ) -> None:
        self.writer = writer
        self.pending: deque[Future[None]] = deque()
        self.alert = alert
        self.batch_id = batch_id
        self.attempts = attempts
        self.store = store
        self.hosts = hosts
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.observe = observe
        self.entries: list[LedgerEntry] = []
        self.gone: list[int] = []
        self.last_flush = clock()
        self.interval_s = policy.flush_interval_s
        self.report = BatchReport(batch_id, alert.id)
        self.ends_at = ends_at(alert)

    def __call__(self, result: PushResult) -> None:
        now = self.clock()
        decision = classify(result, now)
        self.report.outcomes[decision.answer] = self.report.outcomes.get(decision.answer, 0) + 1
        if result.error != "blocked":
            self.report.sent += 1
            self.hosts.count(result.host, decision.answer)
        if self.observe is not None:
            self.observe(result, decision)
        attempt = self.attempts.get(result.subscription_id, 0) + (
            0 if result.error == "blocked" else 1
        )
        entry = self._entry(result, decision, attempt, now)
        self.entries.append(entry)
        if entry.status is LedgerStatus.GONE:
            self.gone.append(result.subscription_id)
        if len(self.entries) >= self.policy.flush_every or now - self.last_flush >= self.interval_s:
            self.flush()

    def _entry(
        self, result: PushResult, decision: Decision, attempt: int, now: float
    ) -> LedgerEntry:
        sid, code, host = result.subscription_id, result.status, result.host
        if decision.outcome is Outcome.DELIVERED:
            self.policy.rejections.delivered(result.host, now)
            return LedgerEntry(sid, LedgerStatus.DELIVERED, code, attempt, push_host=host)
        if decision.outcome is Outcome.GONE:
            return LedgerEntry(sid, LedgerStatus.GONE, code, attempt, push_host=host)
        if decision.outcome is Outcome.FAILED:
            return LedgerEntry(sid, LedgerStatus.FAILED, code, attempt, push_host=host)
        verdict, limit = None, self.policy.retry_max_attempts
        if decision.open_breaker:  # a 400/401/403: our request refused, or one reader's?
            verdict = self.policy.rejections.refused(
                self.hosts, result, attempt, now, self.policy.breaker_open_s
            )
            if verdict is Verdict.READER:  # refused while the host delivers to others
                return LedgerEntry(sid, LedgerStatus.FAILED, code, attempt, push_host=host)
            attempt, limit = verdict.counted(attempt, limit)
        if attempt >= limit:
            return LedgerEntry(sid, LedgerStatus.FAILED, code, attempt, push_host=host)
        if result.blocked_until is not None:
            wait = max(0.0, result.blocked_until - now) + self.rng.random()
        elif decision.retry_after_s is not None:
            wait = decision.retry_after_s
        elif verdict is Verdict.HOST:
            wait = self.policy.breaker_open_s
        else:
            wait = backoff_s(attempt, self.policy.retry_base_s, self.policy.retry_cap_s, self.rng)
            if verdict is Verdict.PENDING:  # asked again once the host's verdict is in
                wait = max(wait, SETTLE_S + self.rng.random())
        if decision.hold_host and decision.retry_after_s is not None:
            # Retry-After is about the whole push host: hold every sender, not just this one.
            self.hosts.hold(result.host, now + decision.retry_after_s, f"HTTP {code}")
        if now + wait >= self.ends_at:  # due after the alert's TTL: it would only arrive late
            return LedgerEntry(sid, LedgerStatus.FAILED, code, attempt, push_host=host)
        return LedgerEntry(sid, LedgerStatus.RETRY, code, attempt, now + wait)

    def flush(self) -> None:
        now = self.clock()
        self.last_flush = now
        entries, gone = self.entries, self.gone
        self.entries, self.gone = [], []
        if self.writer is None:
            self._write(entries, gone, now)
            return
        self.pending.append(self.writer.submit(self._write, entries, gone, now))
        while len(self.pending) > 2:
            self.pending.popleft().result()

    def close(self) -> None:
        """Write what is left and wait for every chunk (raises what a write raised)."""
        self.flush()
        while self.pending:
            self.pending.popleft().result()

    def _write(self, entries: list[LedgerEntry], gone: list[int], now: float) -> None:
        # Runs on the writer thread (one at a time): the report is read only after close().
        if not entries:
            return  # the lease thread keeps the batch ours
        for attempt in range(WRITE_ATTEMPTS):
            try:
                counts = self.store.record(self.alert.id, entries, gone, now, self.batch_id)
                break
            except Exception:
                # A chunk is one statement: nothing of a failed one stays, and final rows are
                # never counted twice. A deadlock between two batches' chunks clears on a retry.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                log.warning(
                    "ledger write failed; trying again",
                    extra={"batch_id": self.batch_id, "attempt": attempt + 1},
                )
                time.sleep(0.05 * 4**attempt)
        self.report.delivered += counts.delivered
        self.report.gone += counts.gone
        self.report.failed += counts.failed
        self.report.retry += counts.retry


def deliver_batch(
    batch_id: int,
    store: LedgerStore,
    sender: PushSender,
    hosts: HostHealth,
    policy: DeliveryPolicy,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    observe: Callable[[PushResult, Decision], None] | None = None,
    finishing: Finishing | None = None,
    on_complete: Callable[[BatchReport], None] | None = None,
    leases: BatchLeases | None = None,
) -> BatchReport:
    """Push one batch. Idempotent: readers final in the ledger are skipped; a batch another worker
    holds (a live lease, core/leases.py) is left alone. With `finishing` and a sender that takes
    batches (`submit`), returns once the sender has taken it; its last answers are recorded and it
    is finished (`on_complete`) on a thread of `finishing` while the process takes the next one."""
    pipelined = finishing is not None and isinstance(sender, PipelinedSender)
    began = time.monotonic()
    if pipelined:
        cast(PipelinedSender, sender).wait_for_room()
    now, owner = clock(), new_owner()
    claimed = _claim(batch_id, store, leases or StoreLeases(store), owner, policy, clock, now)
    if isinstance(claimed, BatchReport):
        if on_complete is not None:
            on_complete(claimed)
        return claimed
    batch, alert, lease = claimed
    targets, missing = owed_targets(batch, alert, store, policy.endpoints, now)
    live = within_ttl(alert, targets, store, batch_id, now)
    stamp = int(released_at(live))
    messages = _messages(live, targets, policy.receipts, stamp, policy.default_lang, policy.utm)
    attempts = {t.subscription_id: t.attempts for t in targets}
    del targets
    # Ledger chunks and the cancel check run on a writer thread, never on the sender's event
    # loop: one per batch, or with `finishing` one per process for all its open batches (one
    # statement at a time: concurrent chunks of one alert queue on its counters' row lock).
    shared = finishing.writer() if pipelined and finishing is not None else None
    writer = shared or ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
    recorder = _Recorder(
        alert,
        batch_id,
        attempts,
        store,
        hosts,
        policy,
        clock,
        rng or random.Random(),
        observe,
        writer,
    )
    stop = StopCheck(store, alert.id, writer, policy.stop_check_interval_s, clock)
    run = _Run(recorder, stop, lease, writer, shared is None, len(missing), store, clock, owner)
    if finishing is None or not pipelined:
        report = run.complete(partial(sender.send_all, messages, recorder, run.should_stop))
        if on_complete is not None:
            on_complete(report)
        return report
    return _hand_off(run, messages, cast(PipelinedSender, sender), finishing, on_complete, began)


def _hand_off(
    run: _Run,
    messages: list[PushMessage],
    sender: PipelinedSender,
    finishing: Finishing,
    on_complete: Callable[[BatchReport], None] | None,
    began: float,
) -> BatchReport:
    """Give the batch to the sender; return once it has taken it (see deliver_batch)."""
    recorder = run.recorder
    job = sender.submit(messages, recorder, run.should_stop)
    finishing.start(run, job, on_complete)
    submitted = time.monotonic()
    job.wait_handed_off()
    log.info(
        "batch handed to the sender",
        extra={
            "alert_id": recorder.alert.id,
            "batch_id": recorder.batch_id,
            "prepare_s": round(submitted - began, 3),
            "hand_off_s": round(time.monotonic() - submitted, 3),
            # (window, in flight, answer ms) per push host: why a hand-off took long (docs/capacity.md)
            "windows": sender.windows(),
        },
    )
    return BatchReport(recorder.batch_id, recorder.alert.id, handed_off=True)


@dataclass
class _Run:
    """A batch being sent: what records its answers and keeps it claimed until the last one."""

    recorder: _Recorder
    stop: StopCheck
    alive: Lease
    writer: ThreadPoolExecutor
    own_writer: bool
    skipped: int
    store: LedgerStore
    clock: Callable[[], float]
    owner: str

    def __post_init__(self) -> None:
        if not self.own_writer:
            # Several batches are open at once: fewer, fuller ledger chunks (each a statement
            # taking the alert's counters' row lock; small ones doubled PostgreSQL's CPU).
            self.recorder.interval_s = max(self.recorder.interval_s, PIPELINED_FLUSH_S)

    def should_stop(self) -> bool:
        return self.stop.should_stop() or not self.alive.held()

    def complete(self, send: Callable[[], None]) -> BatchReport:
        """Wait for the sending, write the rest of the ledger, finish the batch."""
        try:
            send()
            self.recorder.close()
        finally:
            self.alive.stop()
            if self.own_writer:
                self.writer.shutdown(wait=True)
        report = self.recorder.report
        report.skipped = self.skipped
        report.stopped = self.stop.stopped
        report.lost = self.alive.lost and not report.stopped
        if report.lost:
            log.warning("batch left to its new owner", extra={"batch_id": report.batch_id})
        else:
            _finish(report, self.store, self.alive.leases, self.owner, self.clock)
        return report


class Finishing:
    """Batches handed to the sender, each finished on its own thread once its last answer is in."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._pid = 0

    def writer(self) -> ThreadPoolExecutor:
        """The process's ledger writer thread, shared by its open batches."""
        with self._lock:
            if self._writer is None or self._pid != os.getpid():
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
                self._pid = os.getpid()
            return self._writer

    def start(
        self, run: _Run, job: SendJob, on_complete: Callable[[BatchReport], None] | None
    ) -> None:
        # In the task's context: the batch's last log lines keep its request id.
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run,
            args=(self._finish, run, job, on_complete),
            name="batch-finish",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _finish(
        self, run: _Run, job: SendJob, on_complete: Callable[[BatchReport], None] | None
    ) -> None:
        batch_id = run.recorder.batch_id
        try:
            report = run.complete(job.wait)
        except Exception:
            # Left claimed, its lease no longer renewed: it is taken up again; what the ledger
            # holds is not sent twice.
            log.exception(
                "batch not finished; it will be taken up again", extra={"batch_id": batch_id}
            )
        else:
            try:
                if on_complete is not None:
                    on_complete(report)
            except Exception:
                log.exception("batch completion hook failed", extra={"batch_id": batch_id})
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def drain(self, timeout_s: float) -> bool:
        """Wait for every batch still finishing (False: some still are after the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


def _claim(
    batch_id: int,
    store: LedgerStore,
    leases: BatchLeases,
    owner: str,
    policy: DeliveryPolicy,
    clock: Callable[[], float],
    now: float,
) -> tuple[Batch, Alert, Lease] | BatchReport:
    """The batch, its alert and the lease renewed from the claim on; or the report of a batch
    that is not ours to send. The lease counts from when the claim was asked (core/leases.py)."""
    asked_at = time.monotonic()
    batch = leases.claim(batch_id, owner, now, policy.lease_s)
    if batch is None:
        return BatchReport(batch_id, claimed=False)
    alert = store.get_alert(batch.alert_id)
    if alert is None:
        leases.finish(batch_id, owner, batch.alert_id, True, now)
        return BatchReport(batch_id, claimed=False)
    if alert.status is AlertStatus.CANCELLED:
        leases.finish(batch_id, owner, alert.id, True, now)
        return BatchReport(batch_id, alert.id, stopped=True)
    return batch, alert, Lease(leases, batch_id, owner, policy.lease_s, clock, asked_at)


def _finish(
    report: BatchReport,
    store: LedgerStore,
    leases: BatchLeases,
    owner: str,
    clock: Callable[[], float],
) -> None:
    """Close the batch (only as its owner), let the alert become sent or failed if nothing is
    pending, log it."""
    leases.finish(report.batch_id, owner, report.alert_id, report.stopped, clock())
    status = finish_if_done(store, report.alert_id, clock())
    log.info(
        "batch done",
        extra={
            "alert_id": report.alert_id,
            "batch_id": report.batch_id,
            "sent": report.sent,
            "delivered": report.delivered,
            "gone": report.gone,
            "failed": report.failed,
            "retry": report.retry,
            "alert_status": status.value if status else None,
        },
    )


def _messages(
    alert: Alert,
    targets: list[Target],
    receipts: Receipts | None,
    ts: int,
    default_lang: str = "en",
    utm: UtmTags | None = None,
) -> list[PushMessage]:
    """One message per target, in the reader's language where the alert has it, with its
    receipt; encoded once per language, not per target; the URL UTM-tagged (core/utm.py)."""
    alert = click_through(alert, utm)
    topic = topic_header(alert.story_key)
    templates: dict[str, PayloadTemplate] = {}
    plain: dict[str, bytes] = {}
    bodies: list[bytes] = []
    for t in targets:
        text = alert.text_in(t.lang or default_lang, default_lang)
        if receipts is None:
            if text.lang not in plain:
                plain[text.lang] = build_payload(alert, ts, text.lang, text.title, text.body)
            bodies.append(plain[text.lang])
            continue
        template = templates.get(text.lang)
        if template is None:
            template = templates[text.lang] = payload_template(
                alert, ts, text.title, text.body, text.lang
            )
        bodies.append(template.fill(receipts.sign_bytes(alert.id, t.subscription_id)))
    return [
        PushMessage(
            t.subscription_id,
            t.endpoint,
            t.p256dh,
            t.auth,
            body,
            alert.ttl_s,
            alert.urgency.value,
            topic,
        )
        for t, body in zip(targets, bodies, strict=True)
    ]
