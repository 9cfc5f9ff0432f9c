"""The one pace estimate (report, /ops, alerts watch): estimating first, then a smoothed rate;
a finished alert has a duration, never "0/s"."""

from __future__ import annotations

from dataclasses import replace

from core.model import AlertCounts, AlertStatus
from core.pace import ESTIMATING, ewma_rate, pace_of, samples_from_buckets
from tests.support.samples import ALERT

SENDING = replace(
    ALERT,
    status=AlertStatus.SENDING,
    queued_at=1000.0,
    started_at=1000.5,
    finished_at=None,
    counts=AlertCounts(audience=1000, delivered=300),
)


def test_estimating_until_the_samples_cover_a_few_seconds() -> None:
    assert pace_of(SENDING, []).text == ESTIMATING
    assert pace_of(SENDING, [(1001.0, 0), (1002.0, 100), (1003.0, 200)]).text == ESTIMATING
    pace = pace_of(SENDING, [(1001.0, 0), (1002.0, 100), (1003.0, 200), (1004.0, 300)])
    assert pace.state == "live"
    assert pace.rate_per_s == 100.0 and pace.eta_s == 7.0
    assert pace.text == "100/s · about 7.0 s left"


def test_the_rate_is_smoothed_across_a_batch_gap() -> None:
    steady = [(float(t), 100 * t) for t in range(10)]
    gap = [*steady, (10.0, 900)]  # one empty second between batches
    rate = ewma_rate(gap)
    assert rate is not None and 80 < rate < 100  # dips, does not fall to 0


def test_a_finished_alert_shows_its_duration_not_a_rate() -> None:
    sent = replace(SENDING, status=AlertStatus.SENT, finished_at=1012.5)
    pace = pace_of(sent, [(1001.0, 0), (1012.0, 1000)])
    assert pace.state == "finished" and pace.rate_per_s is None
    assert pace.duration_s == 12.5 and pace.text == "took 12 s"
    stopped = replace(SENDING, status=AlertStatus.CANCELLED, cancelled_at=1004.0)
    assert pace_of(stopped, []).text == "took 4.0 s"
    called_off = replace(ALERT, status=AlertStatus.CANCELLED, started_at=None, cancelled_at=9.0)
    assert pace_of(called_off, []).text == "—"


def test_samples_from_buckets_start_at_the_send_and_skip_the_current_second() -> None:
    key = f"alert:{SENDING.id}"
    buckets = [(999, {key: 5}), (1000, {key: 10}), (1001, {key: 20}), (1002, {key: 7})]
    samples = samples_from_buckets(SENDING, buckets, now=1002.4)
    assert samples == [(1000.5, 0), (1001.0, 10), (1002.0, 30)]
