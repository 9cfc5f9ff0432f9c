"""Alarms: which facts mean alerts are not flowing, and announcing each change exactly once."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from core.model import Lane

log = logging.getLogger("newsflash.alarms")


class AlarmKind(enum.StrEnum):
    QUEUE_STALLED = "queue_stalled"
    PENDING_TOO_OLD = "pending_too_old"
    BREAKER_OPEN = "breaker_open"
    BREAKING_UNATTENDED = "breaking_lane_unattended"
    BROKER_UNREACHABLE = "broker_unreachable"
    DATABASE_UNREACHABLE = "database_unreachable"
    DATABASE_REFUSES_WRITES = "database_refuses_writes"


# What moves a send along: a push delivered, or the reader found gone (a retry is still pending;
# a failure is not a reader reached). The Prometheus rule counts the same outcomes.
SETTLED_OUTCOMES = ("delivered", "gone")

# Instant checks that must hold for Thresholds.for_s before they fire, so a worker restart or a
# broker blip of a few seconds pages nobody (the others carry their own duration already).
HELD_KINDS = frozenset(
    {AlarmKind.BREAKING_UNATTENDED, AlarmKind.BROKER_UNREACHABLE, AlarmKind.DATABASE_UNREACHABLE}
)


@dataclass(frozen=True)
class Thresholds:
    stall_s: float = 60.0
    pending_s: float = 120.0
    for_s: float = 10.0
    # Old pending deliveries page only while sends do not move (at most this many settled a
    # second over the last minute), so a big audience delivered at a healthy pace pages nobody;
    # past pending_max_s they page whatever the pace.
    min_rate_per_s: float = 200.0
    pending_max_s: float = 1800.0


@dataclass(frozen=True)
class QueueFacts:
    name: str
    depth: int
    last_consumed_at: float | None
    waiting_since: float | None


@dataclass(frozen=True)
class Facts:
    """What the evaluator could find out; None means "could not tell" (no change on unknowns)."""

    now: float
    broker_ok: bool
    database_ok: bool
    queues: Sequence[QueueFacts] | None = None
    oldest_pending_s: float | None = None
    pending_known: bool = False
    settled_per_s: float | None = None  # delivered or gone a second, over the last minute
    breakers: Mapping[str, str] | None = None  # push host -> why its breaker is open
    breaking_consumers: int | None = None
    broker_error: str = ""
    database_error: str = ""
    # The kind of write refusal any process saw lately (disk, read_only), "" for none, None when
    # it could not be read (core/ops.REFUSED_WINDOW_S).
    database_refuses: str | None = None


@dataclass(frozen=True)
class Alarm:
    key: str
    kind: AlarmKind
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def evaluate(facts: Facts, thresholds: Thresholds) -> tuple[dict[str, Alarm], set[AlarmKind]]:
    """The alarms the facts call for, and the kinds the facts cannot judge right now."""
    active: dict[str, Alarm] = {}
    unknown: set[AlarmKind] = set()
    for kind, check in _CHECKS:
        found = check(facts, thresholds)
        if found is None:
            unknown.add(kind)
            continue
        for alarm in found:
            active[alarm.key] = alarm
    return active, unknown


def _unreachable(facts: Facts, _t: Thresholds) -> list[Alarm]:
    found = []
    if not facts.broker_ok:
        found.append(
            Alarm(
                AlarmKind.BROKER_UNREACHABLE.value,
                AlarmKind.BROKER_UNREACHABLE,
                "The broker is unreachable: no alert can be queued or delivered.",
                {"error": facts.broker_error},
            )
        )
    if not facts.database_ok:
        found.append(
            Alarm(
                AlarmKind.DATABASE_UNREACHABLE.value,
                AlarmKind.DATABASE_UNREACHABLE,
                "The database is unreachable: alerts cannot be published or recorded.",
                {"error": facts.database_error},
            )
        )
    return found


_REFUSED_WHY = {
    "disk": "its disk is full or failing",
    "read_only": "it is read-only (a standby, or set read-only)",
}


def _refuses_writes(facts: Facts, _t: Thresholds) -> list[Alarm] | None:
    """At the first refusal, as the Prometheus rule: nothing new is stored until someone acts."""
    if facts.database_refuses is None:
        return None
    if not facts.database_refuses:
        return []
    why = _REFUSED_WHY.get(facts.database_refuses, facts.database_refuses)
    return [
        Alarm(
            AlarmKind.DATABASE_REFUSES_WRITES.value,
            AlarmKind.DATABASE_REFUSES_WRITES,
            f"The database refuses writes: {why}. Nothing new is stored: no sign-ups, no "
            "publishing, no delivery records.",
            {"reason": facts.database_refuses},
        )
    ]


def _stalled_queues(facts: Facts, thresholds: Thresholds) -> list[Alarm] | None:
    if facts.queues is None:
        return None
    found = []
    for q in facts.queues:
        if q.depth <= 0 or q.waiting_since is None:
            continue
        quiet_since = max(q.waiting_since, q.last_consumed_at or 0.0)
        quiet_s = facts.now - quiet_since
        if quiet_s >= thresholds.stall_s:
            found.append(
                Alarm(
                    f"{AlarmKind.QUEUE_STALLED.value}:{q.name}",
                    AlarmKind.QUEUE_STALLED,
                    f"Queue {q.name} is stalled: {q.depth} tasks waiting and none taken "
                    f"for {quiet_s:.0f} s.",
                    {"queue": q.name, "depth": q.depth, "quiet_s": round(quiet_s, 1)},
                )
            )
    return found


def _old_pending(facts: Facts, t: Thresholds) -> list[Alarm] | None:
    """Readers are not getting the story: deliveries wait while sends have stopped or crawl, or
    have waited past the ceiling. A send that keeps its pace pages nobody, however big."""
    age, rate = facts.oldest_pending_s, facts.settled_per_s
    if not facts.pending_known:
        return None
    if age is None or age < t.pending_s:
        return []
    if age >= t.pending_max_s:
        summary = (
            f"The oldest pending delivery has waited {age:.0f} s, past the "
            f"{t.pending_max_s:.0f} s ceiling."
        )
    elif rate is None:
        return None  # cannot tell whether sends move
    elif rate > t.min_rate_per_s:
        return []
    elif rate == 0:
        summary = (
            f"Deliveries have stopped: the oldest pending one has waited {age:.0f} s and "
            "none was delivered in the last minute."
        )
    else:
        summary = (
            f"Deliveries crawl: the oldest pending one has waited {age:.0f} s and only "
            f"{rate:.3g} a second were delivered or found gone in the last minute (alarm at "
            f"{t.min_rate_per_s:.0f} or fewer)."
        )
    detail = {"oldest_pending_s": round(age, 1), "settled_per_s": rate}
    return [Alarm(AlarmKind.PENDING_TOO_OLD.value, AlarmKind.PENDING_TOO_OLD, summary, detail)]


def _open_breakers(facts: Facts, _t: Thresholds) -> list[Alarm] | None:
    if facts.breakers is None:
        return None
    return [
        Alarm(
            f"{AlarmKind.BREAKER_OPEN.value}:{host}",
            AlarmKind.BREAKER_OPEN,
            f"Push host {host} refuses our requests ({reason}); its breaker is open. "
            "Check the VAPID key and subject.",
            {"push_host": host, "reason": reason},
        )
        for host, reason in sorted(facts.breakers.items())
    ]


def _breaking_unattended(facts: Facts, _t: Thresholds) -> list[Alarm] | None:
    if facts.breaking_consumers is None:
        return None
    if facts.breaking_consumers != 0:
        return []
    return [
        Alarm(
            AlarmKind.BREAKING_UNATTENDED.value,
            AlarmKind.BREAKING_UNATTENDED,
            f"No worker is consuming {Lane.BREAKING.value}: breaking news would not go out.",
            {"queue": Lane.BREAKING.value},
        )
    ]


# In this order; a check that returns None cannot judge its kind right now.
_CHECKS: tuple[tuple[AlarmKind, Callable[[Facts, Thresholds], list[Alarm] | None]], ...] = (
    (AlarmKind.BROKER_UNREACHABLE, _unreachable),
    (AlarmKind.DATABASE_REFUSES_WRITES, _refuses_writes),
    (AlarmKind.QUEUE_STALLED, _stalled_queues),
    (AlarmKind.PENDING_TOO_OLD, _old_pending),
    (AlarmKind.BREAKER_OPEN, _open_breakers),
    (AlarmKind.BREAKING_UNATTENDED, _breaking_unattended),
)


@dataclass(frozen=True)
class AlarmRecord:
    key: str
    kind: str
    summary: str
    since: float
    detail: Mapping[str, Any] = field(default_factory=dict)
    notified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"detail": dict(self.detail)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> AlarmRecord:
        return AlarmRecord(
            key=str(data["key"]),
            kind=str(data["kind"]),
            summary=str(data.get("summary", "")),
            since=float(data["since"]),
            detail=dict(data.get("detail") or {}),
            notified=bool(data.get("notified", False)),
        )


class AlarmStore(Protocol):
    """Where open alarms live; open is set-if-absent and close is delete-if-present, so when two
    evaluators race exactly one of them announces each change."""

    def open_alarm(self, key: str, record: dict[str, Any]) -> bool: ...
    def update_alarm(self, key: str, record: dict[str, Any]) -> None: ...
    def close_alarm(self, key: str) -> dict[str, Any] | None: ...
    def alarms(self) -> dict[str, dict[str, Any]]: ...
    def defer_notice(self, event: dict[str, Any]) -> None: ...
    def take_notices(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def note_pending(self, keys: set[str], now: float) -> dict[str, float]: ...


class MemoryAlarmStore:
    """Process-local state: unit tests, and the fallback while Redis itself is unreachable."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, Any]] = []
        self.pending: dict[str, float] = {}

    def note_pending(self, keys: set[str], now: float) -> dict[str, float]:
        self.pending = {k: self.pending.get(k, now) for k in keys}
        return dict(self.pending)

    def open_alarm(self, key: str, record: dict[str, Any]) -> bool:
        if key in self.records:
            return False
        self.records[key] = dict(record)
        return True

    def update_alarm(self, key: str, record: dict[str, Any]) -> None:
        if key in self.records:
            self.records[key] = dict(record)

    def close_alarm(self, key: str) -> dict[str, Any] | None:
        return self.records.pop(key, None)

    def alarms(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.records.items()}

    def defer_notice(self, event: dict[str, Any]) -> None:
        self.outbox = [*self.outbox, event][-100:]

    def take_notices(self, limit: int = 20) -> list[dict[str, Any]]:
        taken, self.outbox = self.outbox[:limit], self.outbox[limit:]
        return taken


class FallbackAlarmStore:
    """The shared store first; while it fails (Redis down, often the very outage being alarmed
    about) a local one, whose alarms move to the shared store once it answers again."""

    def __init__(self, shared: AlarmStore, local: MemoryAlarmStore | None = None) -> None:
        self.shared = shared
        self.local = local or MemoryAlarmStore()

    def _try(self, call: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            return True, call()
        except Exception:
            return False, None

    def alarms(self) -> dict[str, dict[str, Any]]:
        ok, found = self._try(self.shared.alarms)
        if not ok:
            return self.local.alarms()
        try:
            for key, record in list(self.local.records.items()):
                self.shared.open_alarm(key, record)
                self.local.records.pop(key)
                found.setdefault(key, record)
            for event in self.local.take_notices(100):
                self.shared.defer_notice(event)
        except Exception:  # noqa: S110 - the rest moves over on the next round
            pass
        return dict(found)

    def open_alarm(self, key: str, record: dict[str, Any]) -> bool:
        ok, opened = self._try(lambda: self.shared.open_alarm(key, record))
        return bool(opened) if ok else self.local.open_alarm(key, record)

    def update_alarm(self, key: str, record: dict[str, Any]) -> None:
        if key in self.local.records:
            self.local.update_alarm(key, record)
            return
        self._try(lambda: self.shared.update_alarm(key, record))

    def close_alarm(self, key: str) -> dict[str, Any] | None:
        local = self.local.close_alarm(key)
        ok, shared = self._try(lambda: self.shared.close_alarm(key))
        return local or (shared if ok else None)

    def defer_notice(self, event: dict[str, Any]) -> None:
        ok, _ = self._try(lambda: self.shared.defer_notice(event))
        if not ok:
            self.local.defer_notice(event)

    def take_notices(self, limit: int = 20) -> list[dict[str, Any]]:
        ok, taken = self._try(lambda: self.shared.take_notices(limit))
        return [*(taken if ok else []), *self.local.take_notices(limit)]

    def note_pending(self, keys: set[str], now: float) -> dict[str, float]:
        ok, seen = self._try(lambda: self.shared.note_pending(keys, now))
        return dict(seen) if ok else self.local.note_pending(keys, now)


Notify = Callable[[dict[str, Any]], bool]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def notice(record: AlarmRecord, status: str, now: float) -> dict[str, Any]:
    """The JSON POSTed to NEWSFLASH_ALERT_WEBHOOK (`text` makes Slack-style hooks readable)."""
    mark = "FIRING" if status == "firing" else "RESOLVED"
    body: dict[str, Any] = {
        "source": "newsflash",
        "status": status,
        "alarm": record.key,
        "kind": record.kind,
        "summary": record.summary,
        "detail": dict(record.detail),
        "since": _iso(record.since),
        "at": _iso(now),
        "text": f"[newsflash] {mark}: {record.summary}",
    }
    if status == "resolved":
        body["duration_s"] = round(now - record.since, 1)
        body["text"] = f"[newsflash] RESOLVED after {now - record.since:.0f} s: {record.summary}"
    return body


def apply_alarms(
    active: Mapping[str, Alarm],
    unknown: set[AlarmKind],
    store: AlarmStore,
    notify: Notify | None,
    now: float,
    for_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Open new alarms (instant checks once they held for_s), close cleared ones (never those
    the facts could not judge), log and notify each change once; failed notifications are
    retried on the next run."""
    events: list[dict[str, Any]] = []
    current = {k: AlarmRecord.from_dict(v) for k, v in store.alarms().items()}
    held = {k for k, a in active.items() if a.kind in HELD_KINDS and k not in current}
    first_seen = store.note_pending(held, now) if held or for_s > 0 else {}

    def send(event: dict[str, Any]) -> bool:
        return True if notify is None else notify(event)

    for key, alarm in active.items():
        existing = current.get(key)
        if existing is None and now - first_seen.get(key, now - for_s) < for_s:
            continue  # not for long enough yet
        if existing is None:
            record = AlarmRecord(key, alarm.kind.value, alarm.summary, now, alarm.detail)
            if not store.open_alarm(key, record.to_dict()):
                continue  # another evaluator opened it first and announces it
            log.error(
                "alarm firing: %s",
                alarm.summary,
                extra={"alarm": key, "kind": alarm.kind.value, "detail": dict(alarm.detail)},
            )
            event = notice(record, "firing", now)
            events.append(event)
            store.update_alarm(key, replace(record, notified=send(event)).to_dict())
        else:
            refreshed = replace(existing, summary=alarm.summary, detail=alarm.detail)
            if not existing.notified:
                refreshed = replace(refreshed, notified=send(notice(refreshed, "firing", now)))
            if refreshed != existing:
                store.update_alarm(key, refreshed.to_dict())

    for key, record in current.items():
        if key not in active and AlarmKind(record.kind) not in unknown:
            events.extend(_close(key, store, send, now))
    _send_deferred(store, send)
    return events


def _close(
    key: str, store: AlarmStore, send: Callable[[dict[str, Any]], bool], now: float
) -> list[dict[str, Any]]:
    """Close a cleared alarm (unless another evaluator did first) and announce it."""
    closed = store.close_alarm(key)
    if closed is None:
        return []  # another evaluator closed it first
    record = AlarmRecord.from_dict(closed)
    log.warning(
        "alarm resolved: %s",
        record.summary,
        extra={"alarm": key, "kind": record.kind, "duration_s": round(now - record.since, 1)},
    )
    event = notice(record, "resolved", now)
    if not record.notified:
        # The firing notice never went out; say both, in order.
        if not (send(notice(record, "firing", now)) and send(event)):
            store.defer_notice(notice(record, "firing", now))
            store.defer_notice(event)
    elif not send(event):
        store.defer_notice(event)
    return [event]


def _send_deferred(store: AlarmStore, send: Callable[[dict[str, Any]], bool]) -> None:
    """Notices that failed before, in order; the rest wait again after the first failure."""
    waiting = store.take_notices()
    for i, event in enumerate(waiting):
        if not send(event):
            for later in waiting[i:]:
                store.defer_notice(later)
            break
