"""The `newsflash` command: builds the parser from each command module and runs the command,
every failure an operator can fix as one line (exit 2)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cli import alerts, backup, db, demo, feeds, keys, ops, processes, send, tokens, users
from cli import settings as settings_listing
from cli.args import OneLineParser
from cli.command import CliError, dev_tool_missing, stop_signals_unwind
from cli.keys import cmd_init
from config.settings import Settings, SettingsError, load_settings

__all__ = ["CliError", "build_parser", "main"]  # CliError: bench/cli.py imports it from here

# In `newsflash --help` order: set-up, sending, processes, then the newsroom's and ops' tools.
_COMMANDS = (
    keys,
    db,
    backup,
    tokens,
    send,
    demo,
    processes,
    users,
    ops,
    alerts,
    settings_listing,
    feeds,
)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="newsflash", description="Self-hosted breaking-news web push."
    )
    # `newsflash run` starts web and workers with it: its own start-up has said the warnings.
    parser.add_argument("--no-start-warnings", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(sub)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# The development checkout's own commands (bench): a callable taking the subparsers.
_EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def _load_extras() -> None:
    if _EXTRA_COMMANDS:
        return
    try:
        from bench.cli import register
    except ModuleNotFoundError as exc:
        if exc.name == "bench.cli":
            return
        if exc.name != "bench":
            raise
        register = _register_missing_bench
    _EXTRA_COMMANDS.append(register)


def _register_missing_bench(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="benchmarks (development checkouts only)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_dev_tool_missing, tool="bench", needs_keys=False)


def _cmd_dev_tool_missing(args: argparse.Namespace, settings: Settings) -> int:
    raise CliError(dev_tool_missing(args.tool))


def main(argv: Sequence[str] | None = None) -> int:
    _load_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        # init is about to write the key files, restore to put them back.
        missing_ok = args.func is cmd_init or getattr(args, "missing_files_ok", False)
        settings = load_settings(missing_secret_files_ok=missing_ok)
        if args.needs_keys:
            from core.bootstrap import load_signer

            load_signer(settings)
            if not args.no_start_warnings:
                warn_about(settings)
        # A command stopped from outside unwinds as on Ctrl-C: its transaction rolled back and
        # a statement still running cancelled, never left in a lock queue. Web, worker, beat,
        # run and the stand-ins handle their own stop signals.
        own = getattr(args, "own_signals", False)
        with contextlib.nullcontext() if own else stop_signals_unwind():
            return int(args.func(args, settings) or 0)
    except (SettingsError, CliError) as exc:
        print(f"newsflash: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = _one_line(exc, settings)
        if line is None:
            raise
        print(f"newsflash: {line}", file=sys.stderr)
        return 2


def _one_line(exc: Exception, settings: Settings | None) -> str | None:
    """What to print for a failure the operator can fix, or None (a bug: let its traceback
    show)."""
    from core.errors import DomainError

    # Not imported at the top, so `newsflash --help` starts without SQLAlchemy, Redis and
    # Celery; and not here either: a StartupError comes from core.bootstrap, already imported.
    bootstrap = sys.modules.get("core.bootstrap")
    if bootstrap is not None and isinstance(exc, bootstrap.StartupError):
        return str(exc)
    if isinstance(exc, DomainError):
        field = f"{exc.field}: " if exc.field else ""
        return f"{field}{exc.message}"
    from cli.failures import service_failure

    return service_failure(exc, settings)


def warn_about(settings: Settings) -> None:
    if "localhost" in settings.vapid_subject:
        print(
            "newsflash: warning: NEWSFLASH_VAPID_SUBJECT names localhost; Apple's push service refuses it. "
            "Set a real mailto: or https: contact before going live.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    raise SystemExit(main())
