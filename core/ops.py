"""The ops picture: queues, workers, delivery rate, alerts in flight, push hosts, subscribers —
gathered from the ports into one JSON-ready snapshot for /ops, the API, /metrics, the CLI and the
alarms, so they all show the same numbers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from core.alarms import AlarmKind
from core.audience_health import renewed_json
from core.model import Alert, AlertStatus, Lane
from core.pace import pace_of, samples_from_buckets

log = logging.getLogger("newsflash.ops")

RATE_WINDOW_S = 60
ALERT_RATE_WINDOW_S = 15
DAYS_SHOWN = 7
# A database refusing writes is shown, and its alarm stays open, until this long after the last
# refusal any process saw (the Prometheus rule looks back as far).
REFUSED_WINDOW_S = 300
ANSWER_COLUMNS = ("2xx", "404/410", "429", "4xx", "5xx", "timeout")
DELIVERY_LANES = (Lane.BREAKING.value, Lane.ROUTINE.value)
T = TypeVar("T")


@dataclass(frozen=True)
class QueueStat:
    name: str
    depth: int
    oldest_enqueued_at: float | None = None
    consumers: int | None = None  # RabbitMQ reports consumers; Redis cannot

    def oldest_age_s(self, now: float) -> float | None:
        if self.depth == 0 or self.oldest_enqueued_at is None:
            return None
        return max(0.0, now - self.oldest_enqueued_at)


@dataclass(frozen=True)
class RunningTask:
    id: str
    name: str
    queue: str | None
    started_at: float | None
    args: str = ""


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: tuple[str, ...]
    processes: int
    pids: tuple[int, ...] = ()
    active: tuple[RunningTask, ...] = ()


class QueueProbe(Protocol):
    def queue_stats(self, names: Sequence[str]) -> list[QueueStat]: ...
    def ping(self) -> None: ...


class WorkerProbe(Protocol):
    def workers(self) -> list[WorkerInfo]: ...


class Telemetry(Protocol):
    def counts_since(self, now: float, window_s: int) -> list[tuple[int, dict[str, int]]]: ...
    def recent_errors(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def consumed_at(self) -> dict[str, float]: ...
    def database_refusals(self) -> dict[str, float]: ...
    def track_waiting(self, depths: Mapping[str, int], now: float) -> dict[str, float]: ...
    def waiting_since(self) -> dict[str, float]: ...


class OpsQueries(Protocol):
    def alerts_by_status(self) -> dict[str, int]: ...
    def subscription_total(self) -> int: ...
    # (hour, new, lost, moved, restored): moved and restored are renewals, the same readers.
    def churn_since(self, since: float) -> list[tuple[int, int, int, int, int]]: ...
    def oldest_pending_at(self, now: float) -> float | None: ...
    def subscribers_per_topic(self) -> dict[str, int]: ...
    # Raises while the database cannot be reached; True when it answers but takes no writes
    # (a standby, a database or role set read-only).
    def ping(self) -> bool | None: ...


class AlertLister(Protocol):
    def list_alerts(
        self, limit: int = 50, before_id: int | None = None, statuses: Sequence[str] = ()
    ) -> list[Alert]: ...


class HostStates(Protocol):
    def states(self) -> dict[str, dict[str, Any]]: ...
    def answers(self) -> dict[str, dict[str, int]]: ...


@dataclass
class OpsSources:
    queues: QueueProbe
    workers: WorkerProbe
    telemetry: Telemetry
    queries: OpsQueries
    alerts: AlertLister
    hosts: HostStates
    queue_names: Sequence[str]
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _unreachable(exc: BaseException) -> str:
    return f"unreachable: {type(exc).__name__}"


class _Sections:
    """Each part of the picture fails on its own: a dead broker still leaves the database view.
    A part that failed is not asked again in the same round: a dependency that hangs costs one
    timeout, not one per question (a scrape must answer within Prometheus's 10 s)."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def run(self, name: str, call: Callable[[], T]) -> T | None:
        if name in self.errors:
            return None
        try:
            return call()
        except Exception as exc:
            self.errors[name] = _unreachable(exc)
            log.debug("ops section failed", extra={"section": name, "error": type(exc).__name__})
            return None


def collect(
    sources: OpsSources,
    now: float,
    track_waiting: bool = False,
    unreachable: Mapping[str, BaseException] | None = None,
) -> dict[str, Any]:
    """Everything /ops shows, as plain JSON values. track_waiting (the alarm evaluator only)
    records since when each queue has had tasks waiting; `unreachable`: sections the caller
    already found down (Redis, when reading the cached snapshot failed), not asked again."""
    s = _Sections()
    s.errors.update({name: _unreachable(exc) for name, exc in (unreachable or {}).items()})
    snap: dict[str, Any] = {"generated_at": iso(now), "now": now}

    stats = s.run("broker", lambda: sources.queues.queue_stats(sources.queue_names))
    snap["broker"] = {"ok": stats is not None, "error": s.errors.get("broker")}
    read_only = s.run("database", sources.queries.ping)
    database_ok = "database" not in s.errors
    snap["database"] = {"ok": database_ok, "error": s.errors.get("database")}
    snap["queues"] = _queues(sources, s, stats, now, track_waiting)

    workers = s.run("workers", sources.workers.workers) if stats is not None else None
    snap["workers"] = None if workers is None else [_worker_json(w, now) for w in workers]

    buckets = s.run("redis", lambda: sources.telemetry.counts_since(now, RATE_WINDOW_S))
    snap["delivery_rate"] = None if buckets is None else _rate(buckets)
    refused = s.run("redis", sources.telemetry.database_refusals)
    if read_only:  # said by the database itself, before anyone's write is refused
        refused = {**(refused or {}), "read_only": now}
    snap["database"]["refuses_writes"] = None if refused is None else _refusing(refused, now)

    pending_at = _from_database(sources, s, snap, database_ok, buckets, now)

    ages = [q.oldest_age_s(now) for q in stats or [] if q.name in DELIVERY_LANES]
    candidates = [a for a in ages if a is not None]
    if pending_at is not None:
        candidates.append(max(0.0, now - pending_at))
    snap["oldest_pending_s"] = _round(max(candidates)) if candidates else None
    # Known only when both places were read: a dead broker or database hides waiting work.
    snap["pending_known"] = stats is not None and database_ok and "database" not in s.errors

    snap["push_hosts"] = s.run("redis", lambda: _hosts(sources.hosts, now))
    snap["recent_errors"] = s.run("redis", lambda: sources.telemetry.recent_errors(20))
    snap["errors"] = s.errors
    snap["redis"] = {"ok": "redis" not in s.errors, "error": s.errors.get("redis")}
    return snap


def _refusing(refused: Mapping[str, float], now: float) -> dict[str, Any]:
    """Whether the database refused a write lately, as any process saw it (db_errors.witness)
    or as the ping found it: the latest kind, disk or read_only, and how long ago. `reason` is
    null when none did."""
    recent = {r: now - at for r, at in refused.items() if now - at <= REFUSED_WINDOW_S}
    if not recent:
        return {"reason": None, "last_s_ago": None}
    reason = min(recent, key=lambda r: recent[r])
    return {"reason": reason, "last_s_ago": _round(max(0.0, recent[reason]), 1)}


def _queues(
    sources: OpsSources,
    s: _Sections,
    stats: list[QueueStat] | None,
    now: float,
    track_waiting: bool,
) -> list[dict[str, Any]] | None:
    """Each queue's depth, age, consumers, last take and since when tasks wait."""
    consumed = s.run("redis", sources.telemetry.consumed_at) or {}

    waiting: dict[str, float] = {}
    if stats is not None and "redis" not in s.errors:
        depths = {q.name: q.depth for q in stats}
        found = s.run(
            "redis",
            (lambda: sources.telemetry.track_waiting(depths, now))
            if track_waiting
            else sources.telemetry.waiting_since,
        )
        waiting = found or {}
    return (
        None
        if stats is None
        else [
            {
                "name": q.name,
                "depth": q.depth,
                "oldest_age_s": _round(q.oldest_age_s(now)),
                "consumers": q.consumers,
                # A worker may take a task between the snapshot's clock read and this one.
                "last_consumed_s_ago": _round(max(0.0, now - consumed[q.name]), 1)
                if q.name in consumed
                else None,
                "waiting_for_s": _round(now - waiting[q.name], 1)
                if q.depth and q.name in waiting
                else None,
            }
            for q in stats
        ]
    )


def _from_database(
    sources: OpsSources,
    s: _Sections,
    snap: dict[str, Any],
    database_ok: bool,
    buckets: list[tuple[int, dict[str, int]]] | None,
    now: float,
) -> float | None:
    """Alerts in flight and by status, subscribers; returns when the oldest pending became due."""
    if database_ok:
        in_flight = s.run(
            "database",
            lambda: sources.alerts.list_alerts(
                limit=20, statuses=[AlertStatus.QUEUED.value, AlertStatus.SENDING.value]
            ),
        )
        snap["alerts_in_flight"] = (
            None if in_flight is None else [_progress(a, buckets or [], now) for a in in_flight]
        )
        snap["alerts_by_status"] = s.run("database", sources.queries.alerts_by_status)
        snap["subscribers"] = s.run("database", lambda: _subscribers(sources, now))
        pending_at = s.run("database", lambda: sources.queries.oldest_pending_at(now))
    else:
        snap["alerts_in_flight"] = snap["alerts_by_status"] = snap["subscribers"] = None
        pending_at = None

    return pending_at


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _worker_json(w: WorkerInfo, now: float) -> dict[str, Any]:
    return {
        "name": w.name,
        "queues": list(w.queues),
        "processes": w.processes,
        "pids": list(w.pids),
        "active": [
            {
                "id": t.id,
                "name": t.name,
                "queue": t.queue,
                "args": t.args,
                "running_s": _round(max(0.0, now - t.started_at)) if t.started_at else None,
            }
            for t in w.active
        ],
    }


def _rate(buckets: list[tuple[int, dict[str, int]]]) -> dict[str, Any]:
    by_outcome: dict[str, int] = {}
    for _second, counts in buckets:
        for name, n in counts.items():
            if not name.startswith("alert:"):
                by_outcome[name] = by_outcome.get(name, 0) + n
    delivered = by_outcome.get("delivered", 0)
    return {
        "window_s": RATE_WINDOW_S,
        "delivered": delivered,
        "attempts": sum(by_outcome.values()),
        "per_second": round(delivered / RATE_WINDOW_S, 2),
        "by_outcome": by_outcome,
        "series": [counts.get("delivered", 0) for _s, counts in buckets],
    }


def _progress(
    alert: Alert, buckets: list[tuple[int, dict[str, int]]], now: float
) -> dict[str, Any]:
    c = alert.counts
    done = c.delivered + c.gone + c.failed
    paced = pace_of(alert, samples_from_buckets(alert, buckets[-ALERT_RATE_WINDOW_S:], now))
    return {
        "id": str(alert.id),
        "title": alert.title,
        "status": alert.status.value,
        "lane": alert.lane.value,
        "audience": c.audience,
        "done": done,
        "delivered": c.delivered,
        "gone": c.gone,
        "failed": c.failed,
        "pending": c.pending,
        "progress": round(done / c.audience, 4) if c.audience else 0.0,
        # null while estimating (the first seconds) and once finished (see pace.duration_s)
        "rate_per_s": paced.as_json()["rate_per_s"],
        "eta_s": paced.as_json()["eta_s"],
        "pace": paced.as_json(),
        "queued_at": iso(alert.queued_at or alert.created_at),
        "started_at": iso(alert.started_at),
        "finished_at": iso(alert.finished_at),
    }


def _answers_row(counts: Mapping[str, int]) -> dict[str, int]:
    row = {name: int(counts.get(name, 0)) for name in ANSWER_COLUMNS}
    row["other"] = sum(int(n) for k, n in counts.items() if k not in ANSWER_COLUMNS)
    return row


def _hosts(hosts: HostStates, now: float) -> list[dict[str, Any]]:
    answers = hosts.answers()
    states = hosts.states()
    rows = []
    for host in sorted(set(answers) | set(states)):
        state = states.get(host, {})
        breaker = state.get("breaker")
        hold = state.get("hold")
        rows.append(
            {
                "host": host,
                "answers": _answers_row(answers.get(host, {})),
                "breaker": _until(breaker, now),
                "hold": _until(hold, now),
            }
        )
    return rows


def _until(state: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    if not state or float(state.get("until", 0)) <= now:
        return None
    return {
        "reason": str(state.get("reason", "")),
        "until": iso(float(state["until"])),
        "remaining_s": round(float(state["until"]) - now, 1),
    }


def _subscribers(sources: OpsSources, now: float) -> dict[str, Any]:
    tz = sources.timezone
    today = datetime.fromtimestamp(now, tz).date()
    first = today - timedelta(days=DAYS_SHOWN - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=tz).timestamp()
    days = {(first + timedelta(days=i)).isoformat(): [0, 0, 0, 0] for i in range(DAYS_SHOWN)}
    for hour, *counts in sources.queries.churn_since(start):
        day = datetime.fromtimestamp(hour * 3600, tz).date().isoformat()
        if day in days:
            days[day] = [a + b for a, b in zip(days[day], counts, strict=True)]
    return {
        "total": sources.queries.subscription_total(),
        "per_topic": sources.queries.subscribers_per_topic(),
        # Renewed as audience health counts it: the same readers on a new endpoint (moved from
        # the live subscription, restored after a 404/410), neither new nor lost.
        "days": [
            {
                "day": d,
                "new": n,
                "lost": lost,
                **renewed_json({"moved": moved, "restored": restored}),
            }
            for d, (n, lost, moved, restored) in days.items()
        ],
        "timezone": tz.key,
    }


__all__ = ["AlarmKind", "OpsSources", "collect"]
