"""What an alert's report shows beyond its counts: pending or not sent, whether a stopped send has
settled, delivery over time, the push services it went through, and whether delivery is held and
why. Pure rules over a small query port; the report page, its live JSON and the tests share them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.model import Alert, AlertStatus, LedgerStatus
from core.newsroom import Milestone
from core.pace import Pace, pace_of, release_time, samples_from_buckets
from core.receipts import EventResult, EventStore

CHART_STEPS = 60  # points on the delivery-over-time chart
NICE_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)

# Push services by endpoint host (the anchored allowlist's four families); anything else (the
# local stand-in, a self-hosted service) is "Other".
SERVICES = (
    ("fcm", "FCM (Chrome, Android)"),
    ("mozilla", "Mozilla (Firefox)"),
    ("apple", "Apple (Safari, iPhone)"),
    ("windows", "Windows (Edge)"),
    ("other", "Other"),
)
SERVICE_NAMES = dict(SERVICES)
SHORT_NAMES = {"fcm": "FCM", "mozilla": "Mozilla", "apple": "Apple", "windows": "Windows"}


def push_service(host: str | None) -> str:
    """The push service an endpoint host belongs to: fcm, mozilla, apple, windows or other."""
    h = (host or "").lower().rstrip(".")
    if h == "fcm.googleapis.com" or h.endswith(".googleapis.com"):
        return "fcm"
    if h.endswith("push.services.mozilla.com"):
        return "mozilla"
    if h == "push.apple.com" or h.endswith(".push.apple.com"):
        return "apple"
    if h.endswith(".notify.windows.com"):
        return "windows"
    return "other"


class ReportQueries(Protocol):
    def delivered_by_step(self, alert_id: int, origin: float, step_s: float) -> dict[int, int]: ...
    def events_by_step(
        self, alert_id: int, origin: float, step_s: float
    ) -> dict[int, tuple[int, int]]: ...
    def outcomes_by_host(self, alert_id: int) -> list[tuple[str | None, int, int]]: ...
    def retry_waiting(self, alert_id: int) -> tuple[int, float | None]: ...
    def batches_running(self, alert_id: int, now: float) -> int: ...
    def event_span(self, alert_id: int, origin: float) -> float | None: ...
    def note_event(self, alert_id: int, kind: str, at: float) -> None: ...


class HostStateSource(Protocol):
    def states(self) -> dict[str, dict[str, Any]]: ...


class BucketSource(Protocol):
    def counts_since(self, now: float, window_s: int) -> list[tuple[int, dict[str, int]]]: ...


# -- counts -------------------------------------------------------------------------------
def pending_of(alert: Alert) -> int:
    """Still owed a push. Nothing is, once the alert was called off or stopped."""
    return 0 if alert.status is AlertStatus.CANCELLED else alert.counts.pending


def not_sent_of(alert: Alert) -> int:
    """Addressed but never pushed: the rest of a called-off or stopped alert."""
    return alert.counts.pending if alert.status is AlertStatus.CANCELLED else 0


# -- by push service ----------------------------------------------------------------------
@dataclass
class ServiceRow:
    key: str
    name: str
    delivered: int = 0
    failed: int = 0
    waiting: int = 0


def by_service(rows: Sequence[tuple[str | None, int, int]]) -> list[ServiceRow]:
    """(host, ledger status, n) → one row per push service, in a fixed order. Gone readers'
    subscriptions are deleted with their host, so gone is only counted in total (not here)."""
    table = {key: ServiceRow(key, name) for key, name in SERVICES}
    for host, status, n in rows:
        if host is None:
            continue
        row = table[push_service(host)]
        if status == LedgerStatus.DELIVERED:
            row.delivered += n
        elif status == LedgerStatus.FAILED:
            row.failed += n
        elif status in (LedgerStatus.RETRY, LedgerStatus.REQUEUED):
            row.waiting += n
    return [r for r in table.values() if r.delivered or r.failed or r.waiting]


# -- held banner --------------------------------------------------------------------------
def held_reasons(
    alert: Alert,
    services: Sequence[ServiceRow],
    states: Mapping[str, Mapping[str, Any]],
    retry: tuple[int, float | None],
    now: float,
    clock: Any,
) -> list[str]:
    """Plain sentences for the banner while delivery is held: a push service refusing (breaker
    open) or asking us to slow down (Retry-After), and deliveries waiting for their retry."""
    if alert.status.finished:
        return []
    used = {r.key for r in services}
    said: list[str] = []
    for host in sorted(states):
        key = push_service(host)
        if used and key not in used:
            continue
        name = SHORT_NAMES.get(key, host)
        for kind in ("breaker", "hold"):
            state = states[host].get(kind)
            if not state or float(state.get("until", 0)) <= now:
                continue
            until = float(state["until"])
            answer = str(state.get("reason") or "an error")
            when = f"{clock(until)} (in about {max(1, round(until - now))} s)"
            if kind == "breaker":
                said.append(
                    f"Delivery to {name} is held: its push service keeps refusing ({answer}), "
                    f"so we pause it until {when}. Nothing is lost; those readers get it then."
                )
            else:
                said.append(
                    f"Delivery to {name} is held: its push service asked us to slow down "
                    f"({answer}). It resumes at {when}."
                )
    waiting, next_at = retry
    if waiting:
        then = "" if next_at is None else f"; the next try is at {clock(max(now, next_at))}"
        said.append(
            f"{waiting:,} deliver{'y is' if waiting == 1 else 'ies are'} waiting to be retried: "
            f"a push service did not accept them the first time{then}."
        )
    return said


# -- delivery over time -------------------------------------------------------------------
@dataclass(frozen=True)
class Chart:
    """Cumulative counts against seconds since release, one line per name."""

    step_s: float
    span_s: float
    total: int  # the y axis
    lines: dict[str, list[tuple[float, int]]]
    marks: list[Milestone] = field(default_factory=list)  # reached ones, each a point on the line


def chart_step(span_s: float) -> float:
    want = max(span_s, 1.0) / CHART_STEPS
    return next((s for s in NICE_STEPS_S if s >= want), NICE_STEPS_S[-1])


def _cumulative(per_step: Mapping[int, int], step_s: float, steps: int) -> list[tuple[float, int]]:
    points, total = [(0.0, 0)], 0
    for i in range(steps):
        total += per_step.get(i, 0)
        points.append((round((i + 1) * step_s, 3), total))
    return points


def through_marks(
    points: Sequence[tuple[float, int]], marks: Sequence[Milestone]
) -> list[tuple[float, int]]:
    """The cumulative line with each mark's exact (time, count) in it. Step counts are drawn at
    their step's end and joined straight, so on their own they reach a count up to a step after
    the ledger's exact time for it: the marks would sit off the line, the 100 % one before the
    line gets there. The marks are exact (the n-th delivery's own time), so the line bends
    through them: before a mark it never counts more than the mark, after it never less."""
    line = list(points)
    for mark in sorted(marks, key=lambda m: (m.deliveries, m.after_s or 0.0)):
        if mark.after_s is None:
            continue
        at, k = mark.after_s, mark.deliveries
        cut = sum(1 for t, _n in line if t <= at)
        line = (
            [(t, min(n, k)) for t, n in line[:cut]]
            + [(at, k)]
            + [(t, max(n, k)) for t, n in line[cut:]]
        )
    return line


def _frame(span_s: float) -> tuple[float, int]:
    step = chart_step(span_s)
    return step, max(1, min(CHART_STEPS + 1, int(span_s // step) + 1))


@dataclass(frozen=True)
class Frame:
    """A chart's time axis: seconds since `origin` (the release) in `steps` of `step_s`."""

    origin: float
    step_s: float
    steps: int


def delivered_frame(alert: Alert, now: float) -> Frame | None:
    """The delivered-over-time axis: release to the send's end (to now while it sends)."""
    return events_frame(alert, None, now)


def events_frame(alert: Alert, last_s: float | None, now: float) -> Frame | None:
    """The displayed-and-clicked axis: as long as the send, or to the last counted event
    (`last_s` after release) if that came later. None before the send started."""
    if alert.started_at is None:
        return None
    origin = release_time(alert)
    end = alert.finished_at or alert.cancelled_at or now
    return Frame(origin, *_frame(max(1.0, end - origin, last_s or 0.0)))


def restep(per_step: Mapping[int, int], from_s: float, to_s: float) -> dict[int, int]:
    """Counts per step of `from_s` seconds regrouped into steps of `to_s`: each old step's
    count goes to the new step its start falls in (exact when the steps are the same)."""
    if from_s == to_s:
        return dict(per_step)
    found: dict[int, int] = {}
    for i, n in per_step.items():
        j = math.floor(i * from_s / to_s + 1e-9)
        found[j] = found.get(j, 0) + n
    return found


def delivery_charts(
    alert: Alert,
    queries: ReportQueries,
    reachable: int,
    marks: Sequence[Milestone],
    now: float,
) -> tuple[Chart, Chart | None] | None:
    """Delivered over time (with the 50/90/100 % marks) and, beside it, displayed and clicked
    over time (readers open alerts long after the send ended, so it has its own time axis)."""
    frame = delivered_frame(alert, now)
    if frame is None:
        return None
    origin, step, steps = frame.origin, frame.step_s, frame.steps
    per_step = queries.delivered_by_step(alert.id, origin, step)
    # A stopped send's last in-flight pushes are answered after the stop: keep them on the chart.
    steps = max(steps, max(per_step, default=-1) + 1)
    reached = [m for m in marks if m.after_s is not None]
    delivered = through_marks(_cumulative(per_step, step, steps), reached)
    sent = Chart(
        step,
        max(steps * step, delivered[-1][0]),
        max(reachable, alert.counts.delivered, 1),
        {"delivered": delivered},
        reached,
    )
    if not (alert.counts.displayed or alert.counts.clicked):
        return sent, None
    opened_frame = events_frame(alert, queries.event_span(alert.id, origin), now)
    if opened_frame is None:  # not started: returned above already
        return sent, None
    ev_step, ev_steps = opened_frame.step_s, opened_frame.steps
    events = queries.events_by_step(alert.id, origin, ev_step)
    opened = Chart(
        ev_step,
        ev_steps * ev_step,
        max(alert.counts.delivered, alert.counts.displayed, 1),
        {
            "displayed": _cumulative({k: v[0] for k, v in events.items()}, ev_step, ev_steps),
            "clicked": _cumulative({k: v[1] for k, v in events.items()}, ev_step, ev_steps),
        },
    )
    return sent, opened


# -- the whole live picture -----------------------------------------------------------------
@dataclass(frozen=True)
class LiveReport:
    pending: int
    not_sent: int
    settling: bool  # stopped; in-flight pushes are still being answered
    pace: Pace
    services: list[ServiceRow]
    held: list[str]


def live_report(
    alert: Alert,
    queries: ReportQueries,
    hosts: HostStateSource | None,
    buckets: BucketSource | None,
    now: float,
    clock: Any,
) -> LiveReport:
    services = by_service(queries.outcomes_by_host(alert.id)) if alert.started_at else []
    settling = (
        alert.status is AlertStatus.CANCELLED
        and alert.started_at is not None
        and queries.batches_running(alert.id, now) > 0
    )
    held: list[str] = []
    samples: list[tuple[float, int]] = []
    if not alert.status.finished and alert.started_at is not None:
        states = _quietly(lambda: hosts.states() if hosts else {}, {})
        retry = queries.retry_waiting(alert.id)
        held = held_reasons(alert, services, states, retry, now, clock)
        found = _quietly(lambda: buckets.counts_since(now, 20) if buckets else [], [])
        samples = samples_from_buckets(alert, found, now)
    return LiveReport(
        pending_of(alert), not_sent_of(alert), settling, pace_of(alert, samples), services, held
    )


def _quietly(ask: Any, default: Any) -> Any:
    """Redis down costs the report its banner and pace, never the page."""
    try:
        return ask()
    except Exception:
        return default


class TimedEvents:
    """The event store, plus when each counted display or click happened (for the chart)."""

    def __init__(self, events: EventStore, timeline: ReportQueries, clock: Any) -> None:
        self.events, self.timeline, self.clock = events, timeline, clock

    def count_event(self, alert_id: int, subscription_id: int, kind: str) -> EventResult:
        result = self.events.count_event(alert_id, subscription_id, kind)
        if result is EventResult.COUNTED:
            _quietly(lambda: self.timeline.note_event(alert_id, kind, self.clock()), None)
        return result
