"""Audience-health rules over weekly rows, with an in-memory fake of the database questions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core import audience_health as ah
from core.audience_health import DeliveryHour, EngagementHour

TZ = ZoneInfo("Europe/Berlin")
# Wednesday 2026-11-25 12:00 Berlin: the week under way began Monday 2026-11-23.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=TZ).timestamp()
WEEK_H = 7 * 24


def hour_at(weeks_ago: int, day: int = 0, hour: int = 10) -> int:
    monday = datetime(2026, 11, 23, hour, 0, tzinfo=TZ).timestamp()
    return int((monday - weeks_ago * WEEK_H * 3600 + day * 86400) // 3600)


class FakeQueries:
    def __init__(self, total: int = 1000) -> None:
        self.total = total
        self.gains: list[tuple[int, int]] = []
        self.renewals: list[tuple[int, int, int]] = []
        self.losses: list[tuple[int, str, int]] = []
        self.deliveries: list[DeliveryHour] = []
        self.engagement: list[EngagementHour] = []
        self.unseen: dict[int, int] = {}

    def gains_since(self, since: float) -> list[tuple[int, int]]:
        return [g for g in self.gains if g[0] * 3600 >= since]

    def renewals_since(self, since: float) -> list[tuple[int, int, int]]:
        return [r for r in self.renewals if r[0] * 3600 >= since]

    def losses_since(self, since: float) -> list[tuple[int, str, int]]:
        return [x for x in self.losses if x[0] * 3600 >= since]

    def deliveries_since(self, since: float) -> list[DeliveryHour]:
        return [d for d in self.deliveries if d.hour * 3600 >= since]

    def engagement_since(self, since: float) -> list[EngagementHour]:
        return [e for e in self.engagement if e.hour * 3600 >= since]

    def subscription_total(self) -> int:
        return self.total

    def unseen_counts(self, now: float, days: Sequence[int]) -> dict[int, int]:
        return {d: self.unseen.get(d, 0) for d in days}

    def week(
        self, weeks_ago: int, per_day: int, shown: float, clicked: float, gone: int = 0
    ) -> None:
        """A week of daily alerts to the whole audience: `per_day` pushes per reader."""
        days = 3 if weeks_ago == 0 else 7
        for day in range(days):
            h = hour_at(weeks_ago, day)
            delivered = per_day * self.total
            self.engagement.append(
                EngagementHour(
                    h,
                    per_day,
                    delivered,
                    int(delivered * shown),
                    int(delivered * shown * clicked),
                )
            )
            self.deliveries.append(DeliveryHour(h, "fcm.googleapis.com", delivered, gone, 0))


def test_weeks_are_newsroom_weeks_with_losses_by_reason() -> None:
    q = FakeQueries(total=1000)
    q.gains += [(hour_at(0), 30), (hour_at(1, day=6, hour=23), 5), (hour_at(8), 99)]
    q.losses += [
        (hour_at(0), "gone", 4),
        (hour_at(0), "unsubscribed", 6),
        (hour_at(1), "purged", 2),
    ]
    weeks = ah.build_weeks(q, NOW, TZ, weeks=8)
    assert [w.start.isoformat() for w in weeks][-2:] == ["2026-11-16", "2026-11-23"]
    assert weeks[-1].gained == 30 and weeks[-2].gained == 5  # Sunday 23:00 is last week
    assert weeks[-1].lost["gone"] == 4 and weeks[-1].lost["unsubscribed"] == 6
    assert weeks[-2].lost["purged"] == 2
    assert sum(w.gained for w in weeks) == 35  # nine weeks ago is not shown
    assert weeks[-1].days == 2.5
    # Walked back from today's 1000: this week started at 1000 - 30 + 10 = 980.
    assert weeks[-1].audience == 990
    assert weeks[-2].audience == (980 + 980 - 5 + 2) / 2


def test_renewals_are_counted_per_week_and_change_no_audience() -> None:
    """A renewal is the same reader on a new endpoint: its own figure, neither a gain nor a
    loss, so the audience walked back from today's total is what it was without it."""
    q = FakeQueries(total=1000)
    q.gains += [(hour_at(0), 30)]
    q.losses += [(hour_at(0), "gone", 4), (hour_at(1), "moved", 1)]
    without = [w.audience for w in ah.build_weeks(q, NOW, TZ, weeks=8)]
    q.renewals += [(hour_at(0), 5, 2), (hour_at(0, day=1), 1, 0), (hour_at(1), 0, 3)]
    weeks = ah.build_weeks(q, NOW, TZ, weeks=8)
    assert weeks[-1].renewed == {"moved": 6, "restored": 2}
    assert weeks[-2].renewed == {"moved": 0, "restored": 3}
    assert [w.audience for w in weeks] == without
    week = ah.report(q, NOW, TZ)["weeks"][-1]
    assert (week["renewed"], week["renewed_total"]) == ({"moved": 6, "restored": 2}, 8)
    assert (week["gained"], week["lost_total"]) == (30, 4)


def test_rising_volume_with_falling_clicks_warns_with_the_numbers() -> None:
    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.04)
    q.week(0, per_day=3, shown=0.9, clicked=0.011)
    health = ah.report(q, NOW, TZ)
    rules = [w["rule"] for w in health["warnings"]]
    assert rules == ["volume_up_clicks_down"]
    message = health["warnings"][0]["message"]
    assert "Readers got 3.6 alerts a day this week, up from 1.0" in message
    assert "from 4.0 % to 1.1 %" in message
    assert "Chrome" in message


def test_steady_sending_and_engagement_gives_no_warning() -> None:
    q = FakeQueries()
    for ago in range(4):
        q.week(ago, per_day=2, shown=0.9, clicked=0.05, gone=5)
    assert ah.report(q, NOW, TZ)["warnings"] == []


def test_more_alerts_with_steady_clicks_is_not_a_warning() -> None:
    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.05)
    q.week(0, per_day=3, shown=0.9, clicked=0.05)
    assert ah.report(q, NOW, TZ)["warnings"] == []


def test_rising_gone_share_warns() -> None:
    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.05, gone=5)
    q.week(0, per_day=1, shown=0.9, clicked=0.05, gone=40)
    warnings = ah.report(q, NOW, TZ)["warnings"]
    assert [w["rule"] for w in warnings] == ["gone_rising"]
    assert "3.8 % of pushes this week came back 404/410" in warnings[0]["message"]
    assert "up from 0.5 %" in warnings[0]["message"]
    assert "restored" not in warnings[0]["message"]


def test_rising_gone_share_says_how_many_readers_came_back_renewed() -> None:
    """A push service rotating endpoints answers 410 for readers who stay; the warning says
    how many of them the week's restores brought back."""
    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.05, gone=5)
    q.week(0, per_day=1, shown=0.9, clicked=0.05, gone=40)
    q.renewals.append((hour_at(0, day=1), 2, 35))
    warnings = ah.report(q, NOW, TZ)["warnings"]
    assert [w["rule"] for w in warnings] == ["gone_rising"]
    assert (
        "35 readers a 404/410 removed came back this week with a renewed subscription"
        " (restored): they were not leaving." in warnings[0]["message"]
    )
    assert warnings[0]["numbers"]["restored"] == 35
    q.renewals[:] = [(hour_at(0, day=1), 0, 1)]
    one = ah.report(q, NOW, TZ)["warnings"][0]["message"]
    assert "1 reader a 404/410 removed came back this week" in one


def test_a_week_too_small_to_judge_falls_back_to_last_week() -> None:
    q = FakeQueries(total=1000)
    q.week(2, per_day=1, shown=0.9, clicked=0.04)
    q.week(1, per_day=3, shown=0.9, clicked=0.01)
    q.engagement.append(EngagementHour(hour_at(0), 1, 50, 40, 0))
    warnings = ah.report(q, NOW, TZ)["warnings"]
    assert [w["rule"] for w in warnings] == ["volume_up_clicks_down"]
    assert "in the week of 2026-11-16" in warnings[0]["message"]


def test_no_data_no_warnings_and_unseen_shares() -> None:
    q = FakeQueries(total=200)
    q.unseen = {30: 50, 90: 20, 180: 2}
    health = ah.report(q, NOW, TZ)
    assert health["warnings"] == []
    assert health["unseen"] == [
        {"days": 30, "count": 50, "share": 0.25},
        {"days": 90, "count": 20, "share": 0.1},
        {"days": 180, "count": 2, "share": 0.01},
    ]
    assert health["weeks"][-1]["click_rate"] is None


def test_a_push_host_delivering_too_little_is_named() -> None:
    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.05)
    q.week(0, per_day=1, shown=0.9, clicked=0.05)
    q.deliveries.append(DeliveryHour(hour_at(0), "updates.push.services.mozilla.com", 700, 0, 300))
    warnings = ah.report(q, NOW, TZ)["warnings"]
    assert [w["rule"] for w in warnings] == ["host_delivery_low"]
    assert "Only 70.0 % of pushes to updates.push.services.mozilla.com" in warnings[0]["message"]


def test_the_week_under_way_is_exported_as_gauges(tmp_path: object) -> None:
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    from core.adapters import metrics

    q = FakeQueries()
    q.week(1, per_day=1, shown=0.9, clicked=0.04)
    q.week(0, per_day=3, shown=0.9, clicked=0.011)
    q.losses.append((hour_at(0), "gone", 4))
    q.renewals.append((hour_at(0), 3, 1))
    q.unseen = {90: 250}
    health = ah.report(q, NOW, TZ)
    body, _ = metrics.render(Path(str(tmp_path)), {"audience_health": health})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }
    assert samples[("newsflash_audience_alerts_per_reader_day", ())] == pytest.approx(3.6, abs=0.02)
    assert samples[("newsflash_audience_clicked_ratio", ())] == pytest.approx(0.011, abs=1e-3)
    assert samples[("newsflash_audience_week_lost", (("reason", "gone"),))] == 4
    assert samples[("newsflash_audience_week_renewed", (("how", "moved"),))] == 3
    assert samples[("newsflash_audience_week_renewed", (("how", "restored"),))] == 1
    assert samples[("newsflash_audience_unseen_ratio", (("days", "90"),))] == 0.25
    assert samples[("newsflash_audience_delivered_ratio", (("push_host", "all"),))] == 1.0
    assert samples[("newsflash_audience_warning", (("rule", "volume_up_clicks_down"),))] == 1
    assert samples[("newsflash_audience_warning", (("rule", "gone_rising"),))] == 0
