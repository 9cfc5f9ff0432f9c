"""`newsflash bench fanout --pairs K`: every pair's ratios, their medians, the target, the CLI.

The runs themselves are the fan-out benchmark's (test_bench_smoke.py runs it live); here the
pairing is driven with stand-in reports at the `run`/`save` boundary. The command line's
refusals of --pairs are with the bench's others in test_bench_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.fanout import Options
from bench.pairs import compare, run_pairs, save_pairs, summary

# (profile) -> (rate to 90 %, steady machine CPU µs per delivery), per pair in order
RUNS = [
    {"realistic": (6_500, 272.0), "plain": (8_500, 207.0)},
    {"realistic": (7_200, 243.0), "plain": (8_200, 214.0)},
    {"realistic": (5_700, 318.0), "plain": (8_800, 195.0)},
]


def fake_report(rate: int, cpu: float, complete: bool = True) -> dict[str, Any]:
    steady = {
        "deliveries_per_s": rate + 500,
        "machine_cpu_us_per_delivery": cpu,
        # the delivery workers (a parent and its prefork children), then the rest
        "cpu_us_per_delivery_by_role": {"worker0": 4.0, "worker0-child": cpu - 64, "sink": 60.0},
    }
    return {
        "fanout": {"complete": complete},
        "runs": [
            {"deliveries_per_s_to_90": rate, "t90_s": 45_000 / rate, "steady": {**steady}},
        ],
    }


def test_pairs_run_realistic_then_plain_and_report_each_ratio_and_the_median(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, int, str]] = []
    runs = iter(RUNS)
    pair: dict[str, tuple[int, float]] = {}

    def run(opts: Options) -> dict[str, Any]:
        nonlocal pair
        if opts.profile == "realistic":
            pair = next(runs)
        seen.append((opts.profile, opts.repeats, opts.label))
        return fake_report(*pair[opts.profile])

    def save(report: dict[str, Any], out: Path | None) -> Path:
        assert out is None  # each run under its own default name
        path = tmp_path / f"run-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(report))
        return path

    report = run_pairs(
        Options(subscribers=50_000, label="ci"), 3, run, save, say=lambda _line: None
    )

    assert seen == [
        ("realistic", 1, "ci pair 1 realistic"),
        ("plain", 1, "ci pair 1 plain"),
        ("realistic", 1, "ci pair 2 realistic"),
        ("plain", 1, "ci pair 2 plain"),
        ("realistic", 1, "ci pair 3 realistic"),
        ("plain", 1, "ci pair 3 plain"),
    ]
    assert [p["ratio_to_90"] for p in report["pairs"]] == [0.765, 0.878, 0.648]
    # plain's CPU per delivery over realistic's: read like the rate ratio
    assert [p["ratio_steady_cpu"] for p in report["pairs"]] == [0.761, 0.881, 0.613]
    assert report["median_ratio_to_90"] == 0.765
    assert report["median_ratio_steady_cpu"] == 0.761
    # the workers' own CPU (what sets the rate with --placement split), read the same way
    assert [p["ratio_steady_worker_cpu"] for p in report["pairs"]] == [
        round((plain[1] - 60) / (realistic[1] - 60), 3)
        for realistic, plain in ((r["realistic"], r["plain"]) for r in RUNS)
    ]
    assert report["complete"] and not report["target_met"]
    assert report["config"] == {
        "subscribers": 50_000,
        "pairs": 3,
        "label": "ci",
        "placement": "shared",
    }
    assert all(Path(p["realistic"]["report"]).exists() for p in report["pairs"])

    text = summary(report)
    assert "median: 76 % by the rate to 90 %, 76 % by steady CPU per delivery (" in text
    assert "% by the workers')" in text
    assert "target 85 %: not met" in text

    written = save_pairs(report, tmp_path / "pairs.json")
    assert json.loads(written.read_text())["median_ratio_to_90"] == 0.765


def test_the_target_is_met_by_the_median_not_by_the_best_pair() -> None:
    def side(rate: int, cpu: float) -> dict[str, Any]:
        return {
            "report": None,
            "complete": True,
            "deliveries_per_s_to_90": rate,
            "steady_machine_cpu_us_per_delivery": cpu,
        }

    one_good = compare(
        [
            (side(8_800, 230.0), side(9_000, 210.0)),  # 98 %
            (side(6_000, 280.0), side(9_000, 210.0)),
            (side(6_300, 280.0), side(9_000, 210.0)),
        ]
    )
    assert one_good["median_ratio_to_90"] == 0.7 and not one_good["target_met"]
    mostly_good = compare(
        [
            (side(7_700, 240.0), side(9_000, 210.0)),
            (side(7_800, 240.0), side(9_000, 210.0)),
            (side(6_000, 280.0), side(9_000, 210.0)),
        ]
    )
    assert mostly_good["median_ratio_to_90"] == 0.856 and mostly_good["target_met"]


def test_an_unfinished_run_stops_the_pairs_and_says_so() -> None:
    calls: list[str] = []

    def run(opts: Options) -> dict[str, Any]:
        calls.append(opts.profile)
        return fake_report(6_000, 280.0, complete=opts.profile == "plain")

    report = run_pairs(
        Options(subscribers=1_000),
        5,
        run,
        lambda _report, _out: Path("unsaved.json"),
        say=lambda _line: None,
    )
    assert calls == ["realistic", "plain"]  # no second pair after a run that did not finish
    assert len(report["pairs"]) == 1 and not report["complete"]
