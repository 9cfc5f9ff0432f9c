"""The bench's stand-in push services answer late as the profile says, each answer once, in
due order, never early; the marks and the rate curve count first deliveries."""

from __future__ import annotations

import asyncio

import uvloop

from bench.fanout import _per_host
from bench.sink import CURVE_STEPS_PER_S, THROTTLE_S, Counts, Later, Marks, realistic_host


def test_later_answers_each_once_in_due_order_and_never_early() -> None:
    async def run() -> list[tuple[float, float, int]]:
        loop = asyncio.get_running_loop()
        later = Later(loop)
        seen: list[tuple[float, float, int]] = []

        def answered(i: int, due: float) -> None:
            seen.append((loop.time(), due, i))

        delays = [0.030, 0.005, 0.0301, 0.012, 0.012, 0.0]
        for i, delay in enumerate(delays):
            later.call(delay, answered, i, loop.time() + delay)
        await asyncio.sleep(0.08)
        assert not later.due  # every slot fired and was dropped
        return seen

    seen = uvloop.run(run())
    assert sorted(i for _t, _due, i in seen) == [0, 1, 2, 3, 4, 5]
    assert all(at >= due - 0.0005 for at, due, _i in seen)  # the loop's clock, 1 ms slots
    assert [i for _t, _d, i in seen][:2] == [5, 1]  # soonest first
    assert all(at - due < 0.02 for at, due, _i in seen)


def test_marks_and_the_curve_count_each_subscriber_once() -> None:
    counts = Counts(10)
    for i in [0, 1, 2, 3, 4, 4, 5, 6, 7]:
        counts.push(i, True, 100, now=counts.started_at + 0.1)
    assert counts.duplicates == 1 and counts.distinct == 8
    assert set(counts.marks) == {"50"}  # 8 of 10: past half, short of 90 %
    counts.push(8, True, 100, now=counts.started_at + 0.2)
    counts.push(9, True, 100, now=counts.started_at + 1.1)
    assert set(counts.marks) == {"50", "90", "100"}
    assert sum(counts.curve) == 10 and len(counts.curve) == CURVE_STEPS_PER_S * 1 + 1
    marks = Marks(0)
    marks.arrived(0, 5.0)
    assert marks == {"50": 5.0, "90": 5.0, "100": 5.0}


def test_the_realistic_counts_leave_the_gone_out_of_what_is_expected() -> None:
    counts = Counts(2000, realistic=True)
    gone = sum(counts.gone)
    assert 20 < gone < 120  # 3 % of 2,000
    assert counts.expect == 2000 - gone


def test_each_push_service_has_marks_counted_once_per_reader() -> None:
    counts = Counts(2000, realistic=True)
    readers = [i for i in range(2000) if not counts.gone[i] and realistic_host(i).name == "mozilla"]
    mozilla = realistic_host(readers[0])
    t0 = counts.started_at
    for n, i in enumerate(readers[:-1]):
        counts.delivered(mozilla, i, 100, True)
        if n == 0:  # a duplicate counts for nothing
            counts.delivered(mozilla, i, 100, True)
    assert set(counts.host_marks["mozilla"]) == {"50", "90", "99"}  # one deliverable reader left
    counts.delivered(mozilla, readers[-1], 100, True)
    assert set(counts.host_marks["mozilla"]) == {"50", "90", "99", "100"}
    assert counts.host_distinct["mozilla"] == len(readers)
    assert not counts.host_marks["fcm"]  # nobody on FCM had it yet
    assert all(t0 <= at for at in counts.host_marks["mozilla"].values())


def test_the_report_says_how_long_a_throttled_services_readers_waited_after_the_hold() -> None:
    t0 = 1000.0
    host = {"delivered": 90, "gone": 3, "unavailable": 0, "throttled": 40, "tail": 1}
    stats = {
        "hosts": {
            "mozilla": host | {"first_at": t0 + 0.1, "last_at": t0 + 18.0},
            "fcm": host | {"throttled": 0, "first_at": t0 + 0.1, "last_at": t0 + 6.0},
        },
        "host_marks": {
            "mozilla": {"50": t0 + 2.0, "90": t0 + 15.5, "99": t0 + 16.0, "100": t0 + 18.0},
            "fcm": {"50": t0 + 2.0, "90": t0 + 4.0, "99": t0 + 5.0, "100": t0 + 6.0},
        },
        "throttle_from": t0 + 3.0,
    }
    figures = _per_host(stats, t0)["hosts"]
    assert figures["mozilla"]["after_hold_s"] == {
        "90": round(15.5 - 3.0 - THROTTLE_S, 3),
        "99": round(16.0 - 3.0 - THROTTLE_S, 3),
        "100": round(18.0 - 3.0 - THROTTLE_S, 3),
    }
    assert figures["mozilla"]["t99_s"] == 16.0
    assert "after_hold_s" not in figures["fcm"]  # never throttled
    assert figures["fcm"]["t90_s"] == 4.0
