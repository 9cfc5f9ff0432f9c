"""The benchmarks' command line refuses what it cannot run in one line, before anything starts
(no database, no processes, no report), and writes its reports where --out says: a file, or a
folder the reports go into under their own names."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from bench.fanout import Options
from bench.pairs import run_pairs, save_pairs
from bench.reports import RESULTS, write_report
from cli.main import main
from tests.support.cli import start_cli
from tests.support.services import ROOT, port_open, require_service
from tests.support.stack import wait_until

BENCH_WORK = ROOT / "var" / "bench"


def _listing() -> set[str]:
    return {str(p) for folder in (RESULTS, BENCH_WORK) if folder.exists() for p in folder.iterdir()}


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    before = _listing()
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's refusals
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert _listing() == before  # nothing was started, nothing written
    line, *more = err.strip().splitlines()
    assert not more, "a refusal is one line"
    return line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "argument --subscribers/-n: a whole number from 1 to 10000000"),
        (["-n", "10", "--pairs", "0"], "argument --pairs: a whole number from 1 to 50"),
        (["-n", "10", "--pairs", "two"], "argument --pairs: a whole number from 1 to 50"),
        (["-n", "10", "--pairs", "2", "--profile", "plain"], "leave out --profile and --repeats"),
        (["-n", "10", "--pairs", "2", "--repeats", "3"], "leave out --profile and --repeats"),
        (["-n", "many"], "argument --subscribers/-n: a whole number from 1 to 10000000"),
        (["-n", "10", "-w", "0"], "argument --workers/-w: a whole number from 1 to 64"),
        (["-n", "10", "--nodes", "0"], "argument --nodes: a whole number from 1 to 16"),
        (["-n", "10", "--repeats", "-1"], "argument --repeats: a whole number from 0 to 50"),
        (["-n", "10", "--naive-sample", "0"], "argument --naive-sample: a whole number from 1"),
        (["-n", "10", "--web-workers", "0"], "argument --web-workers: a whole number from 1"),
        (["-n", "10", "--latency-ms", "-5"], "argument --latency-ms: a number from 0 to 60000"),
        (["-n", "10", "--latency-ms", "nan"], "argument --latency-ms: a number from 0 to 60000"),
        (["-n", "10", "--timeout", "0"], "argument --timeout: a number above 0 up to 86400"),
        (["-n", "10", "--quiet-share", "2"], "argument --quiet-share: a number from 0 to 0.99"),
        (
            ["-n", "10", "--profile", "realistic", "--tls"],
            "the realistic profile (and --pairs) speaks plain HTTP: leave out --tls",
        ),
        (["-n", "10", "--pairs", "2", "--tls"], "speaks plain HTTP: leave out --tls"),
        (
            ["-n", "10", "--pairs", "2", "--quiet-share", "0.2"],
            "--quiet-share runs with the plain profile",
        ),
        (
            ["-n", "10", "--profile", "realistic", "--quiet-share", "0.2"],
            "--quiet-share runs with the plain profile",
        ),
        (
            ["-n", "10", "--database-url", "sqlite:///bench.db"],
            "--database-url: a postgresql:// URL of an empty database",
        ),
        (["-n", "10", "--redis-url", "http://127.0.0.1:6379"], "--redis-url: a redis:// URL"),
        (
            ["-n", "10", "--batch-size", "0"],
            "argument --batch-size: a whole number from 1 to 10000 (as NEWSFLASH_BATCH_SIZE)",
        ),
        (
            ["-n", "10", "--concurrency", "5000"],
            "argument --concurrency: a whole number from 1 to 2000 (as NEWSFLASH_CONCURRENCY)",
        ),
    ],
)
def test_fanout_refuses_what_it_cannot_run_before_it_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _refused(["bench", "fanout", *args], capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "argument --subscribers/-n: a whole number from 1 to 10000000"),
        (["--days", "0"], "argument --days: a whole number from 1 to 3650"),
        (["--alerts-per-day", "0"], "argument --alerts-per-day: a whole number from 1 to 1000"),
        (["--retention-days", "0"], "argument --retention-days: a whole number from 1 to 3650"),
        (["--chunk", "0"], "argument --chunk: a whole number from 100 to 100000 (as NEWSFLASH_"),
    ],
)
def test_retention_refuses_what_it_cannot_run_before_it_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _refused(["bench", "retention", *args], capsys)


@pytest.mark.parametrize("command", [["fanout", "-n", "10"], ["retention", "--days", "2"]])
def test_an_out_that_cannot_be_written_is_refused_before_the_run(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_the_way = tmp_path / "results.json"
    in_the_way.write_text("{}")
    line = _refused(["bench", *command, "--out", str(in_the_way / "today" / "r.json")], capsys)
    assert line == f"newsflash: --out: {in_the_way} is a file, not a folder"
    assert in_the_way.read_text() == "{}"


def test_a_report_goes_into_an_out_folder_under_its_own_name(tmp_path: Path) -> None:
    folder = tmp_path / "today"
    folder.mkdir()
    written = write_report({"a": 1}, folder, "fanout-50000-realistic")
    assert written.parent == folder and written.name.startswith("fanout-50000-realistic-")
    assert json.loads(written.read_text()) == {"a": 1}
    named = write_report({"b": 2}, folder / "mine.json", "ignored")
    assert named == folder / "mine.json" and json.loads(named.read_text()) == {"b": 2}


def test_pairs_with_an_out_folder_keep_every_report_in_it(tmp_path: Path) -> None:
    """The run that found this: --pairs 5 --out DIR ran 20 minutes and ended in a traceback
    writing the pairs report over the folder."""
    saved_into: list[Path | None] = []

    def run(opts: Options) -> dict[str, Any]:
        steady = {"deliveries_per_s": 5_000, "machine_cpu_us_per_delivery": 300.0}
        return {
            "fanout": {"complete": True},
            "runs": [{"deliveries_per_s_to_90": 4_000, "t90_s": 10.0, "steady": steady}],
        }

    def save(report: dict[str, Any], out: Path | None) -> Path:
        saved_into.append(out)
        return write_report(report, out, f"run-{len(saved_into)}")

    report = run_pairs(Options(subscribers=100, out=tmp_path), 2, run, save, say=lambda _line: None)
    written = save_pairs(report, tmp_path)
    assert saved_into == [tmp_path] * 4
    assert written.parent == tmp_path and written.name.startswith("pairs-100-")
    assert len(list(tmp_path.glob("run-*.json"))) == 4

    beside = tmp_path / "elsewhere" / "pairs.json"
    beside.parent.mkdir()
    saved_into.clear()
    run_pairs(Options(subscribers=100, out=beside), 1, run, save, say=lambda _line: None)
    assert saved_into == [beside.parent] * 2


@pytest.mark.postgres
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=["SIGTERM", "SIGHUP", "SIGKILL"]
)
def test_a_bench_stopped_from_outside_stops_everything_it_started(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """`timeout` (SIGTERM) or a closed terminal (SIGHUP) ends `newsflash bench fanout` with its
    whole stack: every process it started (each in a session of its own, which the signal
    never reaches) stopped and its private database dropped. Before, the bench died alone and
    left its Redis, sink, web server, workers and beat running, and the database behind.
    Killed outright (SIGKILL), its processes still stop (the kernel's parent-death signal);
    only its database stays, for nothing was left to drop it."""
    import psutil
    from sqlalchemy import create_engine, text

    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    require_service("redis-server", shutil.which("redis-server") is not None, "redis-server binary")
    out = tmp_path / "report.json"
    bench = start_cli(["bench", "fanout", "-n", "200", "--repeats", "1", "--out", str(out)], {})
    started: list[psutil.Process] = []
    try:
        me = psutil.Process(bench.pid)

        def web_started() -> list[psutil.Process]:
            found = []
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if " web " in f" {' '.join(child.cmdline())} ":
                        found.append(child)
            return found

        (web, *_more) = wait_until(web_started, 120, "the bench's web server")
        database = web.environ()["NEWSFLASH_DATABASE_URL"].rsplit("/", 1)[1]
        started = me.children(recursive=True)
        assert len(started) >= 4, started  # Redis, the sink, web, and more on the way
        bench.send_signal(stop)
        bench.communicate(timeout=90)

        def running() -> list[psutil.Process]:
            return [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        wait_until(lambda: not running(), 30, "every process the bench started to stop")
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for leftover in started:  # each leads a session of its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leftover.pid, signal.SIGKILL)
    killed = stop == signal.SIGKILL
    assert bench.returncode == (-stop if killed else 128 + stop)
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar_one()
            if killed:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()
    assert left == (1 if killed else 0)
    assert not out.exists()
