"""In-memory fakes of the delivery core's ports (core/ports.py), for unit tests of its rules,
and the two plain ones (RecordingQueue, ScriptedSender) the store tests drive real adapters with.

Each fake is an honest implementation keeping its state in dicts: it follows the same contract
as the real adapter (SqlStores, the HTTP sender, the Celery queue, the Redis host health), so a
test reads the state afterwards the way a user would see it (counts, who was pushed, what was
enqueued). Fault hooks (a broker that is down, a worker killed mid-way) are explicit arguments.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.corrections import NOT_CORRECTED, adds_reached, stops_on_release
from core.endpoints import push_host
from core.freshness import Cursor
from core.model import (
    FINAL_LEDGER_STATUSES,
    Alert,
    AlertCounts,
    AlertKind,
    AlertStatus,
    Batch,
    BatchStatus,
    Lane,
    LedgerStatus,
    Target,
    Urgency,
)
from core.ports import (
    AlertProgress,
    LedgerEntry,
    PlanningConflict,
    PushMessage,
    PushResult,
    QueueUnavailable,
    RecordedCounts,
    StaleAlerts,
)

WAITING = frozenset({LedgerStatus.RETRY, LedgerStatus.REQUEUED})


class FakeClock:
    """Time that only moves when a test (or a fake standing for slow I/O) moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class WorkerKilled(BaseException):
    """Stands for a worker process dying: like SIGKILL, no `except Exception` catches it."""


# -- DeliveryStore ----------------------------------------------------------------------------
@dataclass
class _Sub:
    endpoint: str
    p256dh: str
    auth: str
    topics: frozenset[str]
    test_device_user_id: int | None = None
    seen: float = 0.0  # last_seen_at


@dataclass
class _AlertRow:
    alert: Alert
    send_at: float | None = None
    progress_at: float = 0.0
    planned: bool = False
    cursor: Cursor = field(default_factory=Cursor)
    batches_total: int = 0
    batches_done: int = 0
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    finished_at: float | None = None


@dataclass
class _BatchRow:
    alert_id: int
    seq: int
    kind: str  # "plan" or "retry", as in the batches table
    ids: tuple[int, ...]
    status: BatchStatus
    created_at: float
    heartbeat_at: float | None = None
    runs: int = 0


@dataclass
class _LedgerRow:
    status: LedgerStatus
    attempts: int
    status_code: int | None
    next_attempt_at: float | None


@dataclass
class FakeDeliveryStore:
    """DeliveryStore in dicts, with the rules the SQL adapterss's statements enforce (a ledger row moves
    into a final state once, a batch is claimed by one sender unless its heartbeat is stale, an
    alert finishes when every batch is done and nothing waits for a retry)."""

    subs: dict[int, _Sub] = field(default_factory=dict)
    alerts: dict[int, _AlertRow] = field(default_factory=dict)
    batches: dict[int, _BatchRow] = field(default_factory=dict)
    ledger: dict[tuple[int, int], _LedgerRow] = field(default_factory=dict)
    # Every ledger write that changed a row, in order: (alert_id, subscription_id, status).
    writes: list[tuple[int, int, LedgerStatus]] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- seeding (what the subscription API and the newsroom would have stored) --------------
    def add_subscription(
        self, topics: Iterable[str] = ("breaking",), endpoint: str | None = None, seen: float = 0.0
    ) -> int:
        sid = max(self.subs, default=0) + 1
        url = endpoint or f"https://push.example.test/send/{sid}"
        self.subs[sid] = _Sub(url, f"p256dh-{sid}", f"auth-{sid}", frozenset(topics), seen=seen)
        return sid

    def touch(self, sid: int, now: float) -> None:
        """A resubscribe or topic change: last_seen_at moves up to now (never down)."""
        with self._lock:
            sub = self.subs[sid]
            sub.seen = max(sub.seen, now)

    def add_alert(
        self,
        topics: Sequence[str] = ("breaking",),
        status: AlertStatus = AlertStatus.QUEUED,
        send_at: float | None = None,
        now: float = 0.0,
        urgency: Urgency = Urgency.NORMAL,
    ) -> int:
        alert_id = max(self.alerts, default=0) + 1
        alert = Alert(
            id=alert_id,
            title=f"Alert {alert_id}",
            body="Something happened.",
            url=f"https://news.example.test/{alert_id}",
            topics=tuple(topics),
            urgency=urgency,
            ttl_s=3600,
            story_key=f"story-{alert_id}",
            status=status,
            kind=AlertKind.NORMAL,
            created_at=now,
            send_at=send_at,
        )
        self.alerts[alert_id] = _AlertRow(alert, send_at=send_at, progress_at=now)
        return alert_id

    def add_correction(self, of: int, now: float = 0.0, send_at: float | None = None) -> int:
        """A correction of alert `of` (new words, its topics, Topic and tag): queued as a row
        from before releases stopped the alert (the planner stops it), or scheduled at
        `send_at` (its undo window), released by `due_scheduled`."""
        original = self.alerts[of].alert
        alert_id = max(self.alerts) + 1
        alert = dataclasses.replace(
            original,
            id=alert_id,
            title=f"Correction of {of}",
            status=AlertStatus.QUEUED if send_at is None else AlertStatus.SCHEDULED,
            kind=AlertKind.CORRECTION,
            corrects_id=of,
            created_at=now,
            send_at=send_at,
            started_at=None,
            cancelled_at=None,
        )
        self.alerts[alert_id] = _AlertRow(alert, send_at=send_at, progress_at=now)
        return alert_id

    def leave_topics(self, sid: int) -> None:
        """The reader turned every topic off but kept the subscription."""
        with self._lock:
            self.subs[sid].topics = frozenset()

    def cancel(self, alert_id: int, now: float) -> None:
        """What the newsroom's cancel does: the alert stops, senders see it via is_stopped."""
        with self._lock:
            row = self.alerts[alert_id]
            row.alert = dataclasses.replace(
                row.alert, status=AlertStatus.CANCELLED, cancelled_at=now
            )

    def delivered_to(self, alert_id: int) -> list[int]:
        return sorted(
            sid
            for (aid, sid), row in self.ledger.items()
            if aid == alert_id and row.status is LedgerStatus.DELIVERED
        )

    def status_of(self, alert_id: int, sid: int) -> LedgerStatus | None:
        row = self.ledger.get((alert_id, sid))
        return None if row is None else row.status

    # -- DeliveryStore -------------------------------------------------------------------
    def get_alert(self, alert_id: int) -> Alert | None:
        with self._lock:
            row = self.alerts.get(alert_id)
            if row is None:
                return None
            counts = AlertCounts(
                audience=sum(
                    len(b.ids)
                    for b in self.batches.values()
                    if b.alert_id == alert_id and b.kind == "plan"
                ),
                delivered=row.delivered,
                gone=row.gone,
                failed=row.failed,
            )
            return dataclasses.replace(
                row.alert, planned=row.planned, finished_at=row.finished_at, counts=counts
            )

    def is_stopped(self, alert_id: int) -> bool:
        with self._lock:
            row = self.alerts.get(alert_id)
            return row is None or row.alert.status is AlertStatus.CANCELLED

    def start_sending(self, alert_id: int, now: float) -> Alert | None:
        with self._lock:
            row = self.alerts.get(alert_id)
            if row is None:
                return None
            if row.alert.status in (AlertStatus.QUEUED, AlertStatus.SENDING):
                started = row.alert.started_at if row.alert.started_at is not None else now
                row.alert = dataclasses.replace(
                    row.alert, status=AlertStatus.SENDING, started_at=started
                )
                row.progress_at = now
            if row.alert.status is not AlertStatus.SENDING or row.planned:
                return None
            return self.get_alert(alert_id)

    def next_audience_page(
        self, alert: Alert, after: Cursor, limit: int
    ) -> tuple[list[int], Cursor]:
        with self._lock:
            after_id = after.id
            if alert.kind is AlertKind.TEST:
                ids = [
                    i
                    for i, s in self.subs.items()
                    if s.test_device_user_id == alert.test_user_id and i > after_id
                ]
            elif alert.kind is AlertKind.CORRECTION and alert.corrects_id is not None:
                ids = [
                    sid
                    for (aid, sid), r in self.ledger.items()
                    if aid == alert.corrects_id and sid > after_id and r.status not in NOT_CORRECTED
                ]
            elif after.walking:
                wanted = set(alert.topics)
                keys = sorted(
                    ((s.seen, i) for i, s in self.subs.items() if s.topics & wanted),
                    reverse=True,
                )
                page = [k for k in keys if k < (after.seen, after.id)][:limit]
                if not page:
                    return [], after
                return [i for _, i in page], Cursor(page[-1][1], page[-1][0])
            else:
                wanted = set(alert.topics)
                reached = adds_reached(alert)
                ids = [
                    i
                    for i, s in self.subs.items()
                    if i > after_id
                    and (
                        s.topics & wanted
                        or self.status_of(reached or 0, i) is LedgerStatus.DELIVERED
                    )
                ]
            ids = sorted(ids)[:limit]
            return ids, (Cursor(ids[-1]) if ids else after)

    def unplanned_since(
        self, alert: Alert, after_id: int, since: float, limit: int
    ) -> tuple[list[int], int]:
        with self._lock:
            wanted = set(alert.topics)
            taken = {
                i
                for b in self.batches.values()
                if b.alert_id == alert.id and b.kind == "plan"
                for i in b.ids
            } | {sid for (aid, sid) in self.ledger if aid == alert.id}
            ids = sorted(
                i
                for i, s in self.subs.items()
                if i > after_id and s.seen >= since and s.topics & wanted and i not in taken
            )[:limit]
            return ids, (ids[-1] if ids else after_id)

    def add_batch(
        self, alert_id: int, ids: Sequence[int], after: Cursor, last: Cursor, now: float
    ) -> int:
        with self._lock:
            row = self.alerts[alert_id]
            started = row.cursor == Cursor() and after.id == 0
            if row.planned or not (row.cursor == after or started):
                raise PlanningConflict(alert_id)
            row.cursor = last
            row.batches_total += 1
            row.progress_at = now
            return self._new_batch(alert_id, row.batches_total, "plan", ids, now)

    def _new_batch(self, alert_id: int, seq: int, kind: str, ids: Sequence[int], now: float) -> int:
        batch_id = max(self.batches, default=0) + 1
        self.batches[batch_id] = _BatchRow(
            alert_id, seq, kind, tuple(ids), BatchStatus.QUEUED, created_at=now
        )
        return batch_id

    def finish_planning(self, alert_id: int, now: float) -> None:
        with self._lock:
            row = self.alerts[alert_id]
            row.planned = True
            row.progress_at = now

    def planning_cursor(self, alert_id: int) -> Cursor:
        with self._lock:
            return self.alerts[alert_id].cursor

    def stop_sending(self, alert_id: int, now: float) -> None:
        with self._lock:
            if self.alerts[alert_id].alert.status in (AlertStatus.QUEUED, AlertStatus.SENDING):
                self.cancel(alert_id, now)

    def in_flight(self, alert_id: int, now: float, lease_s: float) -> bool:
        with self._lock:
            return any(
                b.alert_id == alert_id
                and b.status is BatchStatus.SENDING
                and (b.heartbeat_at or 0) >= now - lease_s
                for b in self.batches.values()
            )

    def claim_batch(self, batch_id: int, now: float, stale_after_s: float) -> Batch | None:
        with self._lock:
            b = self.batches.get(batch_id)
            if b is None:
                return None
            stale = b.heartbeat_at is not None and b.heartbeat_at < now - stale_after_s
            if not (b.status is BatchStatus.QUEUED or (b.status is BatchStatus.SENDING and stale)):
                return None
            b.status, b.heartbeat_at, b.runs = BatchStatus.SENDING, now, b.runs + 1
            return Batch(batch_id, b.alert_id, b.seq, b.ids, b.status)

    def load_targets(self, batch: Batch) -> tuple[list[Target], list[int]]:
        with self._lock:
            kind = self.batches[batch.id].kind
            targets: list[Target] = []
            missing: list[int] = []
            for sid in sorted(batch.subscription_ids):
                entry = self.ledger.get((batch.alert_id, sid))
                owed = (
                    entry is not None and entry.status is LedgerStatus.REQUEUED
                    if kind == "retry"
                    else entry is None
                )
                if not owed:
                    continue
                sub = self.subs.get(sid)
                if sub is None:
                    missing.append(sid)
                    continue
                attempts = 0 if entry is None else entry.attempts
                targets.append(Target(sid, sub.endpoint, sub.p256dh, sub.auth, 1, attempts))
            return targets, missing

    def record(
        self,
        alert_id: int,
        entries: Sequence[LedgerEntry],
        gone_ids: Sequence[int],
        now: float,
        batch_id: int | None = None,
    ) -> RecordedCounts:
        if not entries:
            return RecordedCounts()
        with self._lock:
            tally: Counter[LedgerStatus] = Counter()
            for e in entries:
                key = (alert_id, e.subscription_id)
                old = self.ledger.get(key)
                if old is not None and old.status in FINAL_LEDGER_STATUSES:
                    continue
                self.ledger[key] = _LedgerRow(
                    e.status, e.attempts, e.status_code, e.next_attempt_at
                )
                self.writes.append((alert_id, e.subscription_id, e.status))
                tally[e.status] += 1
            row = self.alerts[alert_id]
            row.delivered += tally[LedgerStatus.DELIVERED]
            row.gone += tally[LedgerStatus.GONE]
            row.failed += tally[LedgerStatus.FAILED]
            row.progress_at = now
            for sid in gone_ids:
                if self.ledger[(alert_id, sid)].status is LedgerStatus.GONE and sid in self.subs:
                    del self.subs[sid]
                    self.deleted.append(sid)
            if batch_id is not None:
                self.batches[batch_id].heartbeat_at = now
            return RecordedCounts(
                delivered=tally[LedgerStatus.DELIVERED],
                gone=tally[LedgerStatus.GONE],
                failed=tally[LedgerStatus.FAILED],
                retry=tally[LedgerStatus.RETRY],
            )

    def heartbeat(self, batch_id: int, now: float) -> None:
        with self._lock:
            self.batches[batch_id].heartbeat_at = now

    def finish_batch(
        self, batch_id: int, alert_id: int, missing: int, cancelled: bool, now: float
    ) -> None:
        with self._lock:
            b = self.batches[batch_id]
            if b.status is not BatchStatus.SENDING:
                return
            b.status = BatchStatus.CANCELLED if cancelled else BatchStatus.DONE
            b.heartbeat_at = now
            self.alerts[alert_id].batches_done += 1
            self.alerts[alert_id].progress_at = now

    def alert_progress(self, alert_id: int) -> AlertProgress | None:
        with self._lock:
            row = self.alerts.get(alert_id)
            if row is None:
                return None
            waiting = any(
                aid == alert_id and r.status in WAITING for (aid, _sid), r in self.ledger.items()
            )
            return AlertProgress(
                status=row.alert.status,
                planned=row.planned,
                batches_total=row.batches_total,
                batches_done=row.batches_done,
                waiting=waiting,
                delivered=row.delivered,
                failed=row.failed,
            )

    def finish_alert(
        self, alert_id: int, status: AlertStatus, seen: AlertProgress, now: float
    ) -> bool:
        with self._lock:
            row = self.alerts[alert_id]
            if row.alert.status is not AlertStatus.SENDING:
                return False
            if row.batches_total != seen.batches_total:
                return False
            row.alert = dataclasses.replace(row.alert, status=status)
            row.finished_at = now
            return True

    def take_due_retries(self, now: float, limit: int, batch_size: int) -> list[tuple[int, int]]:
        with self._lock:
            due = sorted(
                key
                for key, r in self.ledger.items()
                if r.status is LedgerStatus.RETRY
                and r.next_attempt_at is not None
                and r.next_attempt_at <= now
                and self.alerts[key[0]].alert.status is AlertStatus.SENDING
            )[:limit]
            by_alert: dict[int, list[int]] = {}
            for alert_id, sid in due:
                by_alert.setdefault(alert_id, []).append(sid)
            created: list[tuple[int, int]] = []
            for alert_id, sids in by_alert.items():
                for start in range(0, len(sids), batch_size):
                    chunk = sids[start : start + batch_size]
                    for sid in chunk:
                        self.ledger[(alert_id, sid)].status = LedgerStatus.REQUEUED
                    row = self.alerts[alert_id]
                    row.batches_total += 1
                    batch_id = self._new_batch(alert_id, row.batches_total, "retry", chunk, now)
                    created.append((batch_id, alert_id))
            return created

    def stale_batches(self, now: float, stale_after_s: float, limit: int) -> list[tuple[int, int]]:
        with self._lock:
            cutoff = now - stale_after_s
            found: list[tuple[int, int]] = []
            for batch_id, b in sorted(self.batches.items()):
                alert = self.alerts[b.alert_id]
                if alert.alert.status is not AlertStatus.SENDING:
                    continue
                mark = b.heartbeat_at if b.heartbeat_at is not None else b.created_at
                lost = (
                    b.status is BatchStatus.QUEUED and mark < cutoff and alert.progress_at < cutoff
                )
                dead = (
                    b.status is BatchStatus.SENDING
                    and b.heartbeat_at is not None
                    and b.heartbeat_at < cutoff
                )
                if lost or dead:
                    found.append((batch_id, b.alert_id))
            for batch_id, _ in found[:limit]:
                self.batches[batch_id].status = BatchStatus.QUEUED
                self.batches[batch_id].heartbeat_at = now
            return found[:limit]

    def stale_alerts(self, now: float, stale_after_s: float) -> StaleAlerts:
        with self._lock:
            cutoff = now - stale_after_s
            stale = [
                alert_id
                for alert_id, r in sorted(self.alerts.items())
                if r.alert.status in (AlertStatus.QUEUED, AlertStatus.SENDING)
                and r.progress_at < cutoff
            ]
            replan = [i for i in stale if not self.alerts[i].planned]
            for alert_id in replan:
                self.alerts[alert_id].progress_at = now
            return StaleAlerts(replan, [i for i in stale if self.alerts[i].planned])

    def due_scheduled(self, now: float) -> list[int]:
        with self._lock:
            due = []
            for alert_id, r in sorted(self.alerts.items()):
                if r.alert.status is AlertStatus.SCHEDULED and (r.send_at or 0) <= now:
                    r.alert = dataclasses.replace(r.alert, status=AlertStatus.QUEUED, queued_at=now)
                    r.progress_at = now
                    due.append(alert_id)
                    taken_over = stops_on_release(r.alert)
                    if taken_over is not None:  # the same transaction, in the SQL store
                        self.stop_sending(taken_over, now)
            return due


# -- TaskQueue ------------------------------------------------------------------------------
@dataclass
class FakeTaskQueue:
    """TaskQueue that remembers what was enqueued. `down` makes every enqueue fail like a broker
    outage; `kill_after` batches kills the caller (the worker) on the next batch enqueue."""

    plans: list[tuple[int, Lane]] = field(default_factory=list)
    batches: list[tuple[int, int, Lane]] = field(default_factory=list)
    down: bool = False
    kill_after: int | None = None

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None:
        if self.down:
            raise QueueUnavailable("broker unreachable")
        self.plans.append((alert_id, lane))

    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None:
        if self.down:
            raise QueueUnavailable("broker unreachable")
        if self.kill_after is not None and len(self.batches) >= self.kill_after:
            self.kill_after = None
            raise WorkerKilled
        self.batches.append((batch_id, alert_id, lane))

    @property
    def batch_ids(self) -> list[int]:
        return [b for b, _a, _l in self.batches]


# -- HostHealth -----------------------------------------------------------------------------
@dataclass
class FakeHostHealth:
    """HostHealth in dicts: Retry-After holds and open breakers per push host."""

    holds: dict[str, tuple[float, str]] = field(default_factory=dict)
    breakers: dict[str, tuple[float, str]] = field(default_factory=dict)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)

    def blocked_until(self, host: str, now: float) -> float | None:
        marks = [v[0] for v in (self.holds.get(host), self.breakers.get(host)) if v is not None]
        until = max(marks, default=0.0)
        return until if until > now else None

    def hold(self, host: str, until: float, reason: str) -> None:
        self.holds[host] = (max(until, self.holds.get(host, (0.0, ""))[0]), reason)

    def open_breaker(self, host: str, until: float, reason: str) -> None:
        self.breakers[host] = (until, reason)

    def count(self, host: str, answer: str) -> None:
        self.answers[(host, answer)] += 1

    def last_delivered(self, host: str) -> float | None:
        return None  # one process: the judge's own view is the whole view


# -- PushSender -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """What the fake push service answers one request (status None: no answer, see error)."""

    status: int | None = 201
    retry_after: str | None = None
    error: str | None = None


@dataclass
class FakePushSender:
    """PushSender that answers from a script per endpoint (default 201) and remembers every
    message it pushed. Like the real sender it asks should_stop() before each request and does
    not push to a host HostHealth holds; each request takes `request_s` of the fake clock and a
    moment of real time, so threads beside it (the ledger writer) get to run."""

    clock: FakeClock
    hosts: FakeHostHealth | None = None
    script: dict[str, list[Answer]] = field(default_factory=dict)
    request_s: float = 0.01
    pushed: list[PushMessage] = field(default_factory=list)
    before_push: Callable[[PushMessage], None] | None = None

    def answer(self, endpoint: str, *answers: Answer) -> None:
        self.script.setdefault(endpoint, []).extend(answers)

    def pushed_ids(self) -> list[int]:
        return [m.subscription_id for m in self.pushed]

    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        for message in messages:
            if should_stop():
                return
            host = push_host(message.endpoint)
            held = self.hosts.blocked_until(host, self.clock()) if self.hosts else None
            if held is not None:
                on_result(
                    PushResult(
                        message.subscription_id, host, None, error="blocked", blocked_until=held
                    )
                )
                continue
            if self.before_push is not None:
                self.before_push(message)
            self.pushed.append(message)
            queued = self.script.get(message.endpoint)
            answer = queued.pop(0) if queued else Answer()
            time.sleep(0.001)
            self.clock.advance(self.request_s)
            on_result(
                PushResult(
                    message.subscription_id,
                    host,
                    answer.status,
                    retry_after=answer.retry_after,
                    error=answer.error,
                )
            )


# -- plain port stand-ins for tests of the real stores ----------------------------------------
class RecordingQueue:
    """TaskQueue port that remembers the plans and batches asked for."""

    def __init__(self) -> None:
        self.plans: list[int] = []
        self.batches: list[int] = []

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None:
        self.plans.append(alert_id)

    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None:
        self.batches.append(batch_id)


class ScriptedSender:
    """PushSender at the port boundary: answers from a per-subscription script."""

    def __init__(self, answer: Callable[[PushMessage], PushResult]) -> None:
        self.answer = answer
        self.sent: list[int] = []

    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        for m in messages:
            if should_stop():
                return
            self.sent.append(m.subscription_id)
            on_result(self.answer(m))
