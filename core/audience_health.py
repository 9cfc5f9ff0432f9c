"""Audience health: weekly gains, losses, delivery and engagement, and the warnings that match
how browsers decide to quiet or revoke a site's notifications. Pure functions over hourly rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from core.model import LossReason

WEEKS_SHOWN = 8
UNSEEN_DAYS = (30, 90, 180)
LOSS_REASONS = tuple(r.value for r in LossReason)
RENEWALS = ("moved", "restored")
# Below these a week is too small to compare: a handful of clicks swings any rate.
MIN_DELIVERED = 200
MIN_DISPLAYED = 100
# A warning needs a real move, not noise: sends per reader up by a quarter while the click rate
# falls by a quarter; the gone share at least 1 % and half again the week before.
VOLUME_RISE = 1.25
CLICK_FALL = 0.75
GONE_SHARE_MIN = 0.01
GONE_RISE = 1.5
HOST_DELIVERED_MIN = 0.90


@dataclass(frozen=True)
class DeliveryHour:
    hour: int  # hours since the epoch
    push_host: str
    delivered: int
    gone: int
    failed: int


@dataclass(frozen=True)
class EngagementHour:
    hour: int
    alerts: int
    delivered: int
    displayed: int
    clicked: int


class HealthQueries(Protocol):
    def gains_since(self, since: float) -> list[tuple[int, int]]: ...
    # (hour, moved, restored): renewals, the same readers on a new subscription.
    def renewals_since(self, since: float) -> list[tuple[int, int, int]]: ...
    def losses_since(self, since: float) -> list[tuple[int, str, int]]: ...
    def deliveries_since(self, since: float) -> list[DeliveryHour]: ...
    def engagement_since(self, since: float) -> list[EngagementHour]: ...
    def subscription_total(self) -> int: ...
    def unseen_counts(self, now: float, days: Sequence[int]) -> dict[int, int]: ...


@dataclass
class Week:
    start: date
    days: float  # days covered: 7, or fewer for the week under way
    gained: int = 0
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOSS_REASONS, 0))
    # Renewals: the browser's new subscription took over the reader's record, from the live
    # row (moved) or from a tombstone after a 410 (restored). Neither gained nor lost.
    renewed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RENEWALS, 0))
    alerts: int = 0
    delivered: int = 0  # of this week's alerts (engagement basis)
    displayed: int = 0
    clicked: int = 0
    hosts: dict[str, list[int]] = field(default_factory=dict)  # host -> [delivered, gone, failed]
    audience: float = 0.0  # mean subscriptions over the week

    @property
    def attempted(self) -> int:
        return sum(sum(v) for v in self.hosts.values())

    @property
    def gone(self) -> int:
        return sum(v[1] for v in self.hosts.values())

    @property
    def pushes_delivered(self) -> int:
        return sum(v[0] for v in self.hosts.values())

    @property
    def per_reader_day(self) -> float | None:
        if self.audience <= 0 or self.days <= 0:
            return None
        return self.delivered / self.audience / self.days

    @property
    def display_rate(self) -> float | None:
        return _ratio(self.displayed, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _ratio(self.clicked, self.displayed)

    @property
    def gone_share(self) -> float | None:
        return _ratio(self.gone, self.attempted)


@dataclass(frozen=True)
class Warning:
    rule: str
    message: str
    numbers: dict[str, float]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def week_starts(now: float, tz: ZoneInfo, weeks: int) -> list[date]:
    """Mondays of the last `weeks` weeks in the newsroom's zone, the current week last."""
    today = datetime.fromtimestamp(now, tz).date()
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def build_weeks(
    queries: HealthQueries, now: float, tz: ZoneInfo, weeks: int = WEEKS_SHOWN
) -> list[Week]:
    starts = week_starts(now, tz, weeks)
    bounds = [_midnight(d, tz) for d in starts]
    rows = [
        Week(d, min(7.0, (now - b) / 86400) if i == weeks - 1 else 7.0)
        for i, (d, b) in enumerate(zip(starts, bounds, strict=True))
    ]
    since = bounds[0]

    def week_of(hour: int) -> Week | None:
        day = datetime.fromtimestamp(hour * 3600, tz).date()
        index = (day - starts[0]).days // 7
        return rows[index] if 0 <= index < weeks else None

    for hour, n in queries.gains_since(since):
        if (w := week_of(hour)) is not None:
            w.gained += n
    for hour, moved, restored in queries.renewals_since(since):
        if (w := week_of(hour)) is not None:
            w.renewed["moved"] += moved
            w.renewed["restored"] += restored
    for hour, reason, n in queries.losses_since(since):
        if (w := week_of(hour)) is not None:
            w.lost[reason] = w.lost.get(reason, 0) + n
    for d in queries.deliveries_since(since):
        if (w := week_of(d.hour)) is not None:
            counts = w.hosts.setdefault(d.push_host, [0, 0, 0])
            counts[0] += d.delivered
            counts[1] += d.gone
            counts[2] += d.failed
    for e in queries.engagement_since(since):
        if (w := week_of(e.hour)) is not None:
            w.alerts += e.alerts
            w.delivered += e.delivered
            w.displayed += e.displayed
            w.clicked += e.clicked
    _fill_audience(rows, queries.subscription_total())
    return rows


def _fill_audience(weeks: Sequence[Week], total_now: int) -> None:
    """Walk back from today's total through each week's net change: the mean of a week's
    start and end is its audience (renewals change nothing: the same readers)."""
    end = float(total_now)
    for w in reversed(weeks):
        start = max(0.0, end - w.gained + sum(w.lost.values()))
        w.audience = (start + end) / 2
        end = start


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _compared(weeks: Sequence[Week]) -> tuple[Week, Week, str] | None:
    """The latest week with enough deliveries to judge (this week, or last when this one has
    barely begun) and the week before it."""
    for i in range(len(weeks) - 1, 0, -1):
        if weeks[i].delivered >= MIN_DELIVERED or weeks[i].attempted >= MIN_DELIVERED:
            label = "this week" if i == len(weeks) - 1 else f"in the week of {weeks[i].start}"
            return weeks[i], weeks[i - 1], label
    return None


def evaluate(weeks: Sequence[Week]) -> list[Warning]:
    """The patterns that get a site's notifications quieted or revoked, in plain words."""
    pair = _compared(weeks)
    if pair is None:
        return []
    cur, prev, label = pair
    found: list[Warning] = []
    volume = _volume_up_clicks_down(cur, prev, label)
    if volume is not None:
        found.append(volume)
    gone = _gone_rising(cur, prev, label)
    if gone is not None:
        found.append(gone)
    found.extend(_hosts_failing(cur, prev, label))
    return found


def _volume_up_clicks_down(cur: Week, prev: Week, label: str) -> Warning | None:
    now_rate, was_rate = cur.per_reader_day, prev.per_reader_day
    now_click, was_click = cur.click_rate, prev.click_rate
    if None in (now_rate, was_rate, now_click, was_click):
        return None
    assert now_rate is not None and was_rate is not None
    assert now_click is not None and was_click is not None
    if min(cur.displayed, prev.displayed) < MIN_DISPLAYED or was_rate <= 0:
        return None
    if now_rate < was_rate * VOLUME_RISE or now_click > was_click * CLICK_FALL:
        return None
    return Warning(
        "volume_up_clicks_down",
        f"Readers got {now_rate:.1f} alerts a day {label}, up from {was_rate:.1f}, while clicks"
        f" fell from {_pct(was_click)} to {_pct(now_click)} of notifications shown. Chrome"
        " revokes notification permission from sites that send a lot and get little"
        " engagement, and browsers switch such sites to quiet prompts: send fewer, better"
        " targeted alerts.",
        {
            "alerts_per_reader_day": round(now_rate, 2),
            "alerts_per_reader_day_before": round(was_rate, 2),
            "click_rate": round(now_click, 4),
            "click_rate_before": round(was_click, 4),
        },
    )


def _gone_rising(cur: Week, prev: Week, label: str) -> Warning | None:
    now_share, was_share = cur.gone_share, prev.gone_share
    if now_share is None or was_share is None or prev.attempted < MIN_DELIVERED:
        return None
    if now_share < GONE_SHARE_MIN or now_share < was_share * GONE_RISE:
        return None
    restored = cur.renewed["restored"]
    # A push service that rotates endpoints answers 410 for readers who stay: their service
    # workers restore them. Those 410s are not readers leaving; the message says how many.
    back = (
        f" {restored} {'reader' if restored == 1 else 'readers'} a 404/410 removed came back"
        f" {label} with a renewed subscription (restored): they were not leaving."
        if restored
        else ""
    )
    return Warning(
        "gone_rising",
        f"{_pct(now_share)} of pushes {label} came back 404/410 (the reader is gone), up from"
        f" {_pct(was_share)}. Each is a reader who revoked permission, cleared their browser or"
        " was unsubscribed by the browser; a rising share usually follows too many or too"
        f" little relevant alerts.{back}",
        {
            "gone": cur.gone,
            "attempted": cur.attempted,
            "gone_share": round(now_share, 4),
            "gone_share_before": round(was_share, 4),
            "restored": restored,
        },
    )


def _hosts_failing(cur: Week, prev: Week, label: str) -> Iterable[Warning]:
    for host, (delivered, gone, failed) in sorted(cur.hosts.items()):
        attempted = delivered + gone + failed
        if attempted < MIN_DELIVERED or delivered / attempted >= HOST_DELIVERED_MIN:
            continue
        before = prev.hosts.get(host)
        was = _ratio(before[0], sum(before)) if before else None
        since = f" (was {_pct(was)})" if was is not None else ""
        yield Warning(
            "host_delivery_low",
            f"Only {_pct(delivered / attempted)} of pushes to {host} were delivered {label}"
            f"{since}: look at that push service's answers under Push services.",
            {"delivered": delivered, "attempted": attempted},
        )


def report(
    queries: HealthQueries, now: float, tz: ZoneInfo, weeks: int = WEEKS_SHOWN
) -> dict[str, Any]:
    """The audience-health view as plain JSON values (for /ops, the API, the CLI, /metrics)."""
    rows = build_weeks(queries, now, tz, weeks)
    total = queries.subscription_total()
    unseen = queries.unseen_counts(now, UNSEEN_DAYS)
    return {
        "timezone": tz.key,
        "subscribers": total,
        "unseen": [
            {"days": d, "count": unseen.get(d, 0), "share": _round(_ratio(unseen.get(d, 0), total))}
            for d in UNSEEN_DAYS
        ],
        "weeks": [_week_json(w) for w in rows],
        "warnings": [
            {"rule": w.rule, "message": w.message, "numbers": w.numbers} for w in evaluate(rows)
        ],
    }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def renewed_json(renewed: Mapping[str, int]) -> dict[str, Any]:
    """Renewals as every JSON view gives them (the health weeks, /ops's days): by how (moved,
    restored) and their total."""
    counts = {how: int(renewed.get(how, 0)) for how in RENEWALS}
    return {"renewed": counts, "renewed_total": sum(counts.values())}


def _week_json(w: Week) -> dict[str, Any]:
    return {
        "week": w.start.isoformat(),
        "days": round(w.days, 2),
        "gained": w.gained,
        "lost": dict(w.lost),
        "lost_total": sum(w.lost.values()),
        **renewed_json(w.renewed),
        "alerts": w.alerts,
        "audience": round(w.audience, 1),
        "alerts_per_reader_day": _round(w.per_reader_day, 2),
        "delivered": w.delivered,
        "displayed": w.displayed,
        "clicked": w.clicked,
        "displayed_rate": _round(w.display_rate),
        "click_rate": _round(w.click_rate),
        "attempted": w.attempted,
        "gone": w.gone,
        "gone_share": _round(w.gone_share),
        "delivered_rate": _round(_ratio(w.pushes_delivered, w.attempted)),
        "push_hosts": [
            {
                "host": host,
                "attempted": sum(n),
                "delivered": n[0],
                "gone": n[1],
                "failed": n[2],
                "delivered_rate": _round(_ratio(n[0], sum(n))),
            }
            for host, n in sorted(w.hosts.items())
        ],
    }


def latest(health: Mapping[str, Any]) -> dict[str, Any] | None:
    """The week under way (what the Prometheus gauges show)."""
    weeks = health.get("weeks") or []
    return weeks[-1] if weeks else None
