"""`newsflash bench ...`: the benchmarks' command line (registered by cli/main.py)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.args import MAX_PROCESSES, like_setting
from cli.args import number as _number
from cli.args import whole_number as _whole

# Limits of the benchmarks' own options. A value outside them is refused in one line before
# anything starts: a mistyped option must not cost a 20-minute run, nor end it in a traceback.
MAX_SUBSCRIBERS = 10_000_000


def cmd_bench_fanout(args: argparse.Namespace, _settings: Any) -> int:
    try:
        from bench.fanout import Options, check_options, run, save, summary
    except ModuleNotFoundError as exc:
        if exc.name != "psutil":
            raise
        from cli.main import CliError

        raise CliError("bench needs psutil: pip install -e '.[bench]' (make run does)") from None

    _refuse_fanout_combinations(args)
    opts = Options(
        subscribers=args.subscribers,
        profile=args.profile or "plain",
        latency_ms=args.latency_ms,
        tls=args.tls,
        workers=args.workers,
        nodes=args.nodes,
        repeats=args.repeats,
        naive_sample=args.naive_sample,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        concurrency_per_host=args.concurrency_per_host,
        concurrency_mode=args.concurrency_mode,
        event_loop=args.event_loop,
        web_workers=args.web_workers,
        database_url=args.database_url,
        redis_url=args.redis_url,
        timeout_s=args.timeout,
        label=args.label or "",
        quiet_share=args.quiet_share,
        order=args.order,
        placement=args.placement,
    )
    profiles = ("realistic", "plain") if args.pairs is not None else (opts.profile,)
    try:
        for profile in profiles:
            check_options(replace(opts, profile=profile))
    except ValueError as exc:
        from cli.main import CliError

        raise CliError(str(exc)) from None
    opts = replace(opts, out=_out(args.out))
    if args.pairs is not None:
        from bench import pairs

        # `timeout` or a closed terminal: cli.main unwinds, the stack is stopped too.
        both = pairs.run_pairs(opts, args.pairs, run, save)
        path = pairs.save_pairs(both, opts.out)
        print(pairs.summary(both))
        print(f"written to {path}")
        return 0 if both["complete"] else 1
    report = run(opts)
    path = save(report, opts.out)
    print(summary(report))
    print(f"written to {path}")
    return 0 if report["fanout"]["complete"] else 1


def cmd_bench_retention(args: argparse.Namespace, _settings: Any) -> int:
    from bench.retention import Options, save, simulate, summary

    opts = Options(
        subscribers=args.subscribers,
        days=args.days,
        alerts_per_day=args.alerts_per_day,
        retention_days=args.retention_days,
        database=args.database,
        chunk=args.chunk,
    )
    out = _out(args.out)
    report = simulate(opts)
    path = save(report, out)
    print(summary(report))
    print(f"written to {path}")
    return 0 if report["levels_off"] else 1


def cmd_bench_sink(args: argparse.Namespace, _settings: Any) -> int:
    from bench.sink import main

    argv = ["--port", str(args.port), "--latency-ms", str(args.latency_ms)]
    if args.tls:
        from bench.sink import make_certificate

        cert, key = make_certificate(Path(args.tls_dir))
        print(f"certificate (trust it with NEWSFLASH_PUSH_CA_FILE): {cert}")
        argv += ["--cert", str(cert), "--key", str(key)]
    return main(argv)


def _refuse_fanout_combinations(args: argparse.Namespace) -> None:
    """Options that cannot run together, refused before anything starts."""
    from cli.main import CliError

    if args.pairs is not None and (args.profile is not None or args.repeats):
        raise CliError(
            "--pairs runs both profiles once per pair: leave out --profile and --repeats"
        )
    if args.database_url is not None and not args.database_url.startswith(
        ("postgresql://", "postgresql+psycopg://")
    ):
        raise CliError("--database-url: a postgresql:// URL of an empty database")
    if args.redis_url is not None and not args.redis_url.startswith(("redis://", "rediss://")):
        raise CliError("--redis-url: a redis:// URL")


def _out(value: str | None) -> Path | None:
    """--out: the report's file, or a folder (existing, or written with a trailing /) that the
    report (and with --pairs each run's report) goes into under its default name. Refused in
    one line, before the run, when it cannot be written there."""
    if not value:
        return None
    from cli.main import CliError

    path = Path(value)
    folder_given = value.endswith(("/", os.sep)) or path.is_dir()
    folder = path if folder_given else path.parent
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise CliError(f"--out: {blocking} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out: cannot make the folder {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"--out: cannot write in {folder}")
    if not folder_given and path.exists() and not (path.is_file() and os.access(path, os.W_OK)):
        raise CliError(f"--out: cannot write {path}")
    return path


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks (fan-out speed)").add_subparsers(
        dest="bench_command", required=True, metavar="BENCHMARK"
    )
    p = bench.add_parser(
        "fanout",
        help="time one alert to N subscribers through the real API, broker and workers",
        description=(
            "Creates a PostgreSQL database, N subscriptions with real P-256 keys pointing at a "
            "local push sink, runs the web server, Celery workers and beat, publishes one alert through "
            "POST /api/v1/alerts and times every push arriving; then runs pywebpush's naive loop "
            "against the same sink for the ratio. Results go to bench/results/*.json."
        ),
    )
    p.add_argument(
        "--subscribers", "-n", type=_whole(1, MAX_SUBSCRIBERS), required=True, metavar="N"
    )
    p.add_argument(
        "--profile",
        choices=["plain", "realistic"],
        help="plain: one loopback sink answering 201; realistic: four push services on"
        " 127.0.0.2-5 (70/15/10/5 %%), jittered answer times, a 1 %% 2 s tail, 3 %% gone (410),"
        " 0.5 %% 503, one host answering 429 for 10 s mid-run (docs/capacity.md); default plain",
    )
    p.add_argument(
        "--pairs",
        type=_whole(1, 50),
        metavar="K",
        help="K pairs of runs, realistic then plain, each saved as its own report, and a"
        " bench/results/pairs-*.json with every pair's realistic/plain ratio and the median"
        " (the adaptive window's target: 85 %%)",
    )
    p.add_argument(
        "--latency-ms", type=_number(0, 60_000), default=0.0, help="push-service answer delay"
    )
    p.add_argument("--tls", action="store_true", help="the sink speaks HTTPS (self-signed)")
    p.add_argument(
        "--workers",
        "-w",
        type=_whole(1, MAX_PROCESSES),
        default=2,
        help="worker processes per node (celery -c)",
    )
    p.add_argument("--nodes", type=_whole(1, 16), default=1, help="`newsflash worker` instances")
    p.add_argument(
        "--repeats", type=_whole(0, 50), default=0, help="alerts timed (default 3 if N ≤ 20k)"
    )
    p.add_argument(
        "--naive-sample",
        type=_whole(1, 1_000_000),
        default=1000,
        help="subscribers in the naive loop",
    )
    for option in ("batch-size", "concurrency", "concurrency-per-host"):
        env = "NEWSFLASH_" + option.upper().replace("-", "_")
        p.add_argument(f"--{option}", type=like_setting(env), help=env)
    p.add_argument(
        "--concurrency-mode", choices=["adaptive", "fixed"], help="NEWSFLASH_CONCURRENCY_MODE"
    )
    p.add_argument(
        "--event-loop", choices=["uvloop", "asyncio"], help="NEWSFLASH_EVENT_LOOP of the workers"
    )
    p.add_argument(
        "--web-workers", type=_whole(1, MAX_PROCESSES), default=2, help="web server processes"
    )
    p.add_argument("--database-url", help="an empty database to use (default: a fresh one)")
    p.add_argument("--redis-url", help="default: a private redis-server on a free port")
    p.add_argument(
        "--timeout", type=_number(0, 86_400, above=True), help="seconds to wait for the fan-out"
    )
    p.add_argument(
        "--out",
        help="JSON report path, or a folder for it (default bench/results/fanout-*.json);"
        " with --pairs the pairs report's, each run's report beside it",
    )
    p.add_argument("--label", help="a note stored in the report")
    p.add_argument(
        "--placement",
        choices=["shared", "split"],
        default="shared",
        help="shared: every process on every core; split: the delivery workers on half of the"
        " cores, the push sink, web, beat, Redis, the bench and a local PostgreSQL on the other"
        " half, as when workers have machines of their own (bench/placement.py)",
    )
    p.add_argument(
        "--order",
        choices=["fresh", "id"],
        help="NEWSFLASH_FRESHEST_FIRST on (fresh) or off (id): the order the planner walks"
        " readers in (the realistic profile gives subscribers ages)",
    )
    p.add_argument(
        "--quiet-share",
        type=_number(0, 0.99),
        default=0.0,
        metavar="P",
        help="this share of readers (0 to 0.99) in their quiet hours: each repeat then times a"
        " breaking alert and a routine one (held for them) and compares worker CPU per push",
    )
    p.set_defaults(func=cmd_bench_fanout, needs_keys=False)

    p = bench.add_parser(
        "retention",
        help="simulate months of alerts on a simulated clock; does the database level off?",
        description=(
            "Each simulated day writes N alerts' ledgers (INSERT ... SELECT, nothing pushed),"
            " batches, per-second display and click counts, audit and churn rows, then runs"
            " the retention rule with the simulated"
            " time. Reports the database size per day (SQLite file, PostgreSQL"
            " pg_database_size) and the bytes one delivery costs. Results go to"
            " bench/results/retention-*.json (docs/capacity.md)."
        ),
    )
    p.add_argument(
        "--subscribers", "-n", type=_whole(1, MAX_SUBSCRIBERS), default=100_000, metavar="N"
    )
    p.add_argument("--days", type=_whole(1, 3650), default=60)
    p.add_argument("--alerts-per-day", type=_whole(1, 1000), default=20)
    p.add_argument(
        "--retention-days",
        type=like_setting("NEWSFLASH_LEDGER_RETENTION_DAYS"),
        default=14,
        help="NEWSFLASH_LEDGER_RETENTION_DAYS",
    )
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument(
        "--chunk",
        type=like_setting("NEWSFLASH_RETENTION_CHUNK"),
        default=5000,
        help="NEWSFLASH_RETENTION_CHUNK",
    )
    p.add_argument(
        "--out",
        help="JSON report path, or a folder for it (default bench/results/retention-*.json)",
    )
    p.set_defaults(func=cmd_bench_retention, needs_keys=False)

    p = bench.add_parser("sink", help="run the benchmark push sink in the foreground")
    p.add_argument("--port", type=int, default=8002)
    p.add_argument("--latency-ms", type=_number(0, 60_000), default=0.0)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--tls-dir", default="var/bench/tls")
    p.set_defaults(func=cmd_bench_sink, needs_keys=False, own_signals=True)
