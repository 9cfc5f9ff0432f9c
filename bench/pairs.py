"""`newsflash bench fanout --pairs K`: the realistic and the plain profile back to back, K times.

The issue's measure of the adaptive window is the realistic profile's rate as a share of the
plain profile's on the same machine. One pair says little on a shared machine (single runs of
the same profile differ by 20 %), so this runs K pairs, realistic then plain, each a whole bench
run of its own, and reports every pair's ratio and the median: by the rate to 90 % (the
issue's measure) and by machine CPU per delivery in the steady part of each run (why).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.fanout import Options
from bench.reports import write_report

TARGET = 0.85  # issue 14, point 2: realistic at least 85 % of plain


def _side(report: dict[str, Any], path: Path) -> dict[str, Any]:
    """What a pair keeps of one run's report."""
    run = report["runs"][0]
    steady = run.get("steady") or {}
    return {
        "report": str(path),
        "complete": bool(report["fanout"]["complete"]),
        "deliveries_per_s_to_90": run.get("deliveries_per_s_to_90"),
        "t90_s": run.get("t90_s"),
        "steady_deliveries_per_s": steady.get("deliveries_per_s"),
        "steady_machine_cpu_us_per_delivery": steady.get("machine_cpu_us_per_delivery"),
        "steady_machine_cpu_busy": steady.get("machine_cpu_busy"),
        # The delivery workers' own share (with --placement split, what sets the rate).
        "steady_worker_cpu_us_per_delivery": _workers(steady.get("cpu_us_per_delivery_by_role")),
    }


def _workers(by_role: dict[str, float] | None) -> float | None:
    if not by_role:
        return None
    return round(sum(v for role, v in by_role.items() if role.startswith("worker")), 1)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def compare(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Per pair (realistic, plain sides) the two ratios; their medians; the target met or not.

    The CPU ratio is plain's CPU per delivery over realistic's, so both ratios read the same
    way: 0.85 means the realistic profile does 85 % of what plain does with the same CPU."""
    rows: list[dict[str, Any]] = []
    for realistic, plain in pairs:
        rows.append(
            {
                "realistic": realistic,
                "plain": plain,
                "ratio_to_90": _ratio(
                    realistic["deliveries_per_s_to_90"], plain["deliveries_per_s_to_90"]
                ),
                "ratio_steady_cpu": _ratio(
                    plain["steady_machine_cpu_us_per_delivery"],
                    realistic["steady_machine_cpu_us_per_delivery"],
                ),
                "ratio_steady_worker_cpu": _ratio(
                    plain.get("steady_worker_cpu_us_per_delivery"),
                    realistic.get("steady_worker_cpu_us_per_delivery"),
                ),
            }
        )

    def median(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    ratio = median("ratio_to_90")
    return {
        "benchmark": "fanout-pairs",
        "pairs": rows,
        "median_ratio_to_90": ratio,
        "median_ratio_steady_cpu": median("ratio_steady_cpu"),
        "median_ratio_steady_worker_cpu": median("ratio_steady_worker_cpu"),
        "complete": all(r["realistic"]["complete"] and r["plain"]["complete"] for r in rows),
        "target": TARGET,
        "target_met": ratio is not None and ratio >= TARGET,
    }


def run_pairs(
    base: Options,
    count: int,
    run: Callable[[Options], dict[str, Any]],
    save: Callable[[dict[str, Any], Path | None], Path],
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`count` pairs, realistic then plain, each run saved as its own report as it ends: in
    bench/results/, or beside the pairs report `base.out` names (in it, if a folder)."""
    folder = None if base.out is None else base.out if base.out.is_dir() else base.out.parent
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    pairs = []
    for k in range(1, count + 1):
        sides = []
        for profile in ("realistic", "plain"):
            label = f"{base.label + ' ' if base.label else ''}pair {k} {profile}"
            report = run(replace(base, profile=profile, repeats=1, out=None, label=label))
            side = _side(report, save(report, folder))
            say(
                f"pair {k}/{count} {profile}: {side['deliveries_per_s_to_90']}/s to 90 %, "
                f"{side['steady_machine_cpu_us_per_delivery']} µs of machine CPU per delivery"
            )
            sides.append(side)
        pairs.append((sides[0], sides[1]))
        if not (sides[0]["complete"] and sides[1]["complete"]):
            break  # a run that did not finish says something is wrong, not how fast it is
    report = compare(pairs)
    report["config"] = {
        "subscribers": base.subscribers,
        "pairs": count,
        "label": base.label,
        "placement": base.placement,
    }
    report["started_at"] = started_at
    return report


def save_pairs(report: dict[str, Any], out: Path | None) -> Path:
    """The pairs report to `out` (a file or a folder), or to bench/results/pairs-*.json."""
    return write_report(report, out, f"pairs-{report['config']['subscribers']}")


def summary(report: dict[str, Any]) -> str:
    lines = [
        "pair  realistic/s  plain/s  ratio (to 90 %)  ratio (steady CPU)  (workers' CPU)",
    ]
    for k, row in enumerate(report["pairs"], 1):
        lines.append(
            f"{k:>4}  {row['realistic']['deliveries_per_s_to_90']!s:>11}"
            f"  {row['plain']['deliveries_per_s_to_90']!s:>7}"
            f"  {_percent(row['ratio_to_90']):>15}  {_percent(row['ratio_steady_cpu']):>18}"
            f"  {_percent(row.get('ratio_steady_worker_cpu')):>14}"
        )
    lines.append(
        f"median: {_percent(report['median_ratio_to_90'])} by the rate to 90 %, "
        f"{_percent(report['median_ratio_steady_cpu'])} by steady CPU per delivery "
        f"({_percent(report.get('median_ratio_steady_worker_cpu'))} by the workers'); "
        f"target {_percent(report['target'])}: {'met' if report['target_met'] else 'not met'}"
    )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"
