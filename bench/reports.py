"""Where the benchmarks' JSON reports go: bench/results/, or the --out file or folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_report(report: dict[str, Any], out: Path | None, name: str) -> Path:
    """Write `report` to `out`; with no `out`, or a folder, as `<name>-<date>-<time>.json` in
    bench/results/ or that folder. Returns the file written."""
    if out is None or out.is_dir():
        out = (out or RESULTS) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
