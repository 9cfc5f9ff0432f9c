"""How fast an alert goes out and when it will be done: the one estimate that the report, /ops and
`newsflash alerts watch` all show.

Rate is an exponentially weighted moving average (EWMA) of the per-interval rates, each weighted
by how long its interval was, so a batch boundary (a second with nothing, then a burst) does not
swing the estimate. Until the samples cover MIN_SPAN_S the answer is "estimating…": a rate read
from one or two seconds says more about batch timing than about the send.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from core.model import Alert, AlertStatus

MIN_SPAN_S = 3.0
HALF_LIFE_S = 5.0
ESTIMATING = "estimating…"


@dataclass(frozen=True)
class Pace:
    state: str  # "waiting" (not started), "estimating", "live", "finished"
    rate_per_s: float | None = None
    eta_s: float | None = None
    duration_s: float | None = None  # release to finish, for a finished alert

    @property
    def text(self) -> str:
        """The words every surface shows: 'estimating…', '1,240/s · about 40 s left', 'took 12.3 s'."""
        if self.state == "finished":
            return "—" if self.duration_s is None else f"took {duration_text(self.duration_s)}"
        if self.state == "waiting":
            return "not started"
        if self.state == "estimating" or self.rate_per_s is None:
            return ESTIMATING
        rate = f"{self.rate_per_s:,.0f}/s" if self.rate_per_s >= 10 else f"{self.rate_per_s:.1f}/s"
        if self.eta_s is None:
            return f"{rate} · stalled"
        return f"{rate} · about {duration_text(self.eta_s)} left"

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 1),
            "text": self.text,
        }


def duration_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def ewma_rate(
    samples: Sequence[tuple[float, int]], half_life_s: float = HALF_LIFE_S
) -> float | None:
    """Smoothed items per second from (time, cumulative count) samples, oldest first."""
    rate: float | None = None
    for (t0, n0), (t1, n1) in pairwise(samples):
        dt = t1 - t0
        if dt <= 0:
            continue
        instant = max(0, n1 - n0) / dt
        weight = 1.0 - 0.5 ** (dt / half_life_s)
        rate = instant if rate is None else rate + weight * (instant - rate)
    return rate


def release_time(alert: Alert) -> float:
    return alert.queued_at or alert.started_at or alert.created_at


def pace_of(alert: Alert, samples: Sequence[tuple[float, int]]) -> Pace:
    """The pace of an alert from samples of its done count (delivered + gone + failed)."""
    if alert.status.finished:
        if alert.finished_at is None or alert.status is AlertStatus.CANCELLED:
            end = alert.cancelled_at if alert.status is AlertStatus.CANCELLED else None
            if end is None or alert.started_at is None:
                return Pace("finished")
            return Pace("finished", duration_s=max(0.0, end - release_time(alert)))
        return Pace("finished", duration_s=max(0.0, alert.finished_at - release_time(alert)))
    if alert.started_at is None and alert.status is not AlertStatus.SENDING:
        return Pace("waiting")
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < MIN_SPAN_S:
        return Pace("estimating")
    rate = ewma_rate(samples)
    if rate is None:
        return Pace("estimating")
    pending = alert.counts.pending
    if pending == 0:
        return Pace("live", rate, 0.0)
    return Pace("live", rate, pending / rate if rate > 0 else None)


def samples_from_buckets(
    alert: Alert, buckets: Iterable[tuple[int, dict[str, int]]], now: float
) -> list[tuple[float, int]]:
    """Per-second telemetry buckets ("alert:<id>" = outcomes recorded that second) → cumulative
    samples at second ends, from the alert's start; the current, unfinished second is left out."""
    start = alert.started_at or release_time(alert)
    key = f"alert:{alert.id}"
    samples: list[tuple[float, int]] = []
    done = 0
    for second, counts in buckets:
        if second + 1 > now or second + 1 <= start:
            continue
        if not samples:
            samples.append((max(float(second), start), 0))
        done += counts.get(key, 0)
        samples.append((float(second + 1), done))
    return samples
