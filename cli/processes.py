"""`newsflash web|worker|beat|run`: the long-running processes, each in the foreground; `run`
starts them all with the demo stand-in (make run)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.args import MAX_PROCESSES, command_name, like_setting, whole_number
from cli.command import CliError
from cli.demo import STANDIN_PORT
from config.settings import Settings


def _port(args: argparse.Namespace, settings: Settings) -> int:
    """--port, else PORT (the settings' port)."""
    return settings.port if args.port is None else int(args.port)


def _queues(text: str) -> str:
    """worker -Q: the lanes this worker consumes, comma separated (an unknown name would make a
    worker that waits on a queue nobody sends to)."""
    from core.model import Lane

    names = [name.strip() for name in text.split(",") if name.strip()]
    known = [lane.value for lane in Lane]
    if not names or any(name not in known for name in names):
        raise argparse.ArgumentTypeError(f"comma separated, from: {', '.join(known)}")
    return ",".join(names)


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    from service.listeners import ListenError, open_listener
    from service.server import serve

    try:
        sock = open_listener(args.host, _port(args, settings), "set PORT or pass --port")
    except ListenError as exc:
        raise CliError(str(exc)) from None
    return serve(sock, settings, processes=args.workers)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.factory import ALL_QUEUES, check_worker_config, make_celery

    app = make_celery(settings)
    check_worker_config(dict(app.conf))
    queues = args.queues or ",".join(ALL_QUEUES)
    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "-Q",
        queues,
        "--concurrency",
        str(args.concurrency or settings.worker_concurrency),
    ]
    if args.name:
        argv += ["-n", args.name]
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    from workers.factory import make_celery

    app = make_celery(settings)
    schedule = settings.var_dir / "celerybeat-schedule"
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", settings.log_level, "-s", str(schedule)])
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from service.runner import run_all

    port = _port(args, settings)
    return run_all(settings, port=port, standin_port=args.standin_port, cli=command_name())


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("web", help="run the web app (waitress, one process per --workers)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--workers",
        type=whole_number(1, MAX_PROCESSES),
        default=2,
        help="server processes (one per core)",
    )
    p.set_defaults(func=cmd_web, needs_keys=True, own_signals=True)

    p = subparsers.add_parser("worker", help="run a Celery worker (all queues unless -Q)")
    p.add_argument("-Q", "--queues", type=_queues, help="lanes, comma separated (default all)")
    p.add_argument(
        "-c", "--concurrency", type=like_setting("NEWSFLASH_WORKER_CONCURRENCY"), help="processes"
    )
    p.add_argument("-n", "--name")
    p.set_defaults(func=cmd_worker, needs_keys=True, own_signals=True)

    p = subparsers.add_parser(
        "beat", help="run Celery beat (schedules, retries, reconciler, alarms)"
    )
    p.set_defaults(func=cmd_beat, needs_keys=False, own_signals=True)

    p = subparsers.add_parser(
        "run", help="web + workers + beat + demo stand-in in the foreground (make run)"
    )
    p.add_argument("--port", type=int)
    p.add_argument("--standin-port", type=int, default=STANDIN_PORT)
    p.set_defaults(func=cmd_run, needs_keys=True, own_signals=True)
