"""The CLI's listings as tables: a header row, each column as wide as its widest cell, counts
right-aligned, the free text (a title, a name, an error) last and never padded, one line saying
so when there is nothing to list, and no control character from stored text reaching the
terminal; and the alerts' titles and progress bars in them."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TextIO

GAP = "  "
TITLE_WIDTH = 50
BAR_WIDTH = 30
# Stored text comes from editors, the CMS and other sites' answers: a newline would break the
# row and an escape sequence would reach the operator's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def cell(value: object) -> str:
    """One line of text for a cell: control characters and runs of space become one space."""
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def short(text: str, width: int = TITLE_WIDTH) -> str:
    """A title for a listing, cut at a word, so it never ends mid-word."""
    text = cell(text)
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut.rstrip(",;:.- ") + "…"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A progress bar for a fraction from 0 to 1."""
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def when(ts: float, tz: tzinfo) -> str:
    """A time in a listing: newsroom time, to the minute, with the zone's abbreviation."""
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %Z")


def table(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[object]], indent: str = ""
) -> list[str]:
    """The header and one line per row; `columns` are (header, "<" or ">")."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in text)])
        for i, (header, _align) in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v if i == len(columns) - 1 and align == "<" else f"{v:{align}{widths[i]}}"
            for i, (v, (_header, align)) in enumerate(zip(values, columns, strict=True))
        ]
        return (indent + GAP.join(parts)).rstrip()

    return [line([header for header, _align in columns]), *(line(row) for row in text)]


def print_table(
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[object]],
    empty: str,
    out: TextIO | None = None,
) -> None:
    """The table, or the one line `empty` when there are no rows."""
    lines = table(columns, rows) if rows else [empty]
    print("\n".join(lines), file=out or sys.stdout)
