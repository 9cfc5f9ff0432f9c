"""Reading a CLI listing as a person does: a header row, then rows whose cells line up under it
(cells are separated by two spaces or more; a cell never holds two spaces in a row)."""

from __future__ import annotations

import re


def cells(line: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of each cell."""
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def read_table(
    lines: list[str], columns: list[str], right: tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """The rows under the header as {column: cell}. Asserts the first line is the header
    `columns`, that every row has a cell under each, lined up with it (left edges, or right
    edges for the `right` columns)."""
    header, *rows = lines
    heads = cells(header)
    assert [name for _s, _e, name in heads] == columns, f"not the header: {header!r}"
    found = []
    for row in rows:
        got = cells(row)
        assert len(got) == len(heads), f"{row!r} has {len(got)} cells, the header {len(heads)}"
        for (h_start, h_end, name), (start, end, text) in zip(heads, got, strict=True):
            if name in right:
                assert end == h_end, f"{text!r} not right-aligned under {name!r}: {row!r}"
            else:
                assert start == h_start, f"{text!r} not under {name!r}: {row!r}"
        found.append(
            {name: text for (_s, _e, name), (_s2, _e2, text) in zip(heads, got, strict=True)}
        )
    return found
