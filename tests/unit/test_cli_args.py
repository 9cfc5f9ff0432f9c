"""Numbers on the command line: out of range, not a number or NaN is refused in one line by
argparse, before the command starts a process, opens a port or touches a database. (Ports are
checked where they are opened: tests/reliability/test_startup_guards.py.)"""

from __future__ import annotations

import argparse

import pytest

from cli.args import number, whole_number
from cli.main import main


def test_whole_numbers_and_numbers_keep_to_their_range() -> None:
    workers = whole_number(1, 64)
    assert workers("1") == 1 and workers("64") == 64
    for bad in ("0", "65", "-3", "2.5", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="a whole number from 1 to 64"):
            workers(bad)
    share = number(0, 0.99)
    assert share("0") == 0 and share("0.99") == 0.99
    for bad in ("-0.1", "1", "nan", "inf", "half"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"a number from 0 to 0\.99"):
            share(bad)
    timeout = number(0, 86_400, above=True)
    assert timeout("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="a number above 0 up to 86400"):
        timeout("0")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["web", "--workers", "0"], "argument --workers: a whole number from 1 to 64"),
        (["web", "--workers", "500"], "argument --workers: a whole number from 1 to 64"),
        (
            ["worker", "-c", "0"],
            "argument -c/--concurrency: a whole number from 1 to 64"
            " (as NEWSFLASH_WORKER_CONCURRENCY)",
        ),
        (
            ["worker", "-Q", "newsflash.breakin"],
            "argument -Q/--queues: comma separated, from: newsflash.breaking, newsflash.routine,"
            " newsflash.maintenance",
        ),
        (["worker", "-Q", ","], "argument -Q/--queues: comma separated"),
        (["alerts", "watch", "1", "--interval", "-1"], "argument --interval: a number from 0.1"),
        (["alerts", "watch", "1", "--every", "0"], "argument --every: a number from 0.1 to 3600"),
        (["alerts", "watch", "1", "--timeout", "nan"], "argument --timeout: a number from 0"),
    ],
)
def test_commands_refuse_numbers_out_of_range_before_they_start(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line, *more = capsys.readouterr().err.strip().splitlines()
    assert not more, "a refusal is one line"
    assert line.startswith("newsflash ") and message in line
    assert line.endswith(" --help")
