"""The CLI's listings as an operator reads them: a header over columns that line up, the
whole of each value (a push host is not cut to 16 characters), one line when there is nothing,
and no control character from stored text reaching the terminal."""

from __future__ import annotations

import io
from typing import Any

from cli.ops import render_status
from cli.tables import cell, print_table, table
from tests.support.listing import read_table


def test_a_table_has_a_header_and_lines_up_under_it() -> None:
    columns = [("ID", ">"), ("NAME", "<"), ("COUNT", ">"), ("NOTE", "<")]
    lines = table(columns, [(7, "a", "1,200", "first"), (1234, "longer name", "3", "x")])
    rows = read_table(lines, ["ID", "NAME", "COUNT", "NOTE"], ("ID", "COUNT"))
    assert rows[1] == {"ID": "1234", "NAME": "longer name", "COUNT": "3", "NOTE": "x"}
    assert all(line == line.rstrip() for line in lines)  # the free text last, never padded
    out = io.StringIO()
    print_table(columns, [], "no things", out)
    assert out.getvalue() == "no things\n"


def test_stored_text_cannot_break_a_row_or_reach_the_terminal() -> None:
    assert cell("Floods\n\x1b[31mclose\tthe road\u2028now\x9b") == "Floods [31mclose the road now"
    lines = table([("ID", ">"), ("TITLE", "<")], [(1, "two\nlines"), (2, "\x1b]0;owned\x07")])
    assert len(lines) == 3 and "\x1b" not in "".join(lines) and "\x07" not in "".join(lines)


def _snapshot(**extra: Any) -> dict[str, Any]:
    answers = {"2xx": 1200, "404/410": 3, "429": 0, "4xx": 0, "5xx": 1, "timeout": 0}
    return {
        "generated_at": "2026-01-01T00:00:00Z",
        "broker": {"ok": True},
        "database": {"ok": True},
        "redis": {"ok": True},
        "queues": [],
        "oldest_pending_s": None,
        "workers": [],
        "delivery_rate": None,
        "alerts_in_flight": [],
        "push_hosts": [
            {"host": "updates.push.services.mozilla.com", "answers": answers, "breaker": None},
            {
                "host": "fcm.googleapis.com",
                "answers": {**answers, "2xx": 12},
                "breaker": {"reason": "HTTP 503"},
            },
        ],
        "recent_errors": [],
        "subscribers": None,
        "errors": {},
        **extra,
    }


def test_status_push_services_line_up_under_their_header() -> None:
    out = io.StringIO()
    error = {
        "at": "2026-01-01T00:00:00Z",
        "alert_id": 3,
        "endpoint": "fcm.googleapis.com#0123456789ab",
        "status": None,
        "error": "reset\n\x1b[2Jby peer",
        "outcome": "retry",
    }
    render_status(_snapshot(recent_errors=[error]), out)
    lines = out.getvalue().splitlines()
    start = lines.index("Push services") + 1
    answers = ["2xx", "404/410", "429", "4xx", "5xx", "TIMEOUT"]
    rows = read_table(lines[start : start + 3], ["HOST", *answers, "BREAKER"], tuple(answers))
    assert [(r["HOST"], r["2xx"], r["BREAKER"]) for r in rows] == [
        ("updates.push.services.mozilla.com", "1200", "closed"),
        ("fcm.googleapis.com", "12", "OPEN (HTTP 503)"),
    ]
    assert "\x1b" not in out.getvalue() and "reset [2Jby peer  retry" in out.getvalue()


def test_status_says_first_that_the_database_refuses_writes() -> None:
    """Before beat's next round has raised the alarm, and while every dependency answers."""
    out = io.StringIO()
    refusing = {"ok": True, "refuses_writes": {"reason": "read_only", "last_s_ago": 2.0}}
    render_status(_snapshot(database=refusing), out)
    first = out.getvalue().splitlines()[0]
    assert first.endswith(": DATABASE REFUSES WRITES: read-only")
    out = io.StringIO()
    render_status(_snapshot(database={"ok": True, "refuses_writes": {"reason": None}}), out)
    assert out.getvalue().splitlines()[0].endswith(": all clear")
