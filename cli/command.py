"""What every `newsflash` command module shares: the one-line refusal, the composition root,
and the private files the CLI writes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from core.bootstrap import Container

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """A one-line message for the terminal; exit status 2."""


def container(settings: Settings) -> Container:
    # Imported here, not above: `newsflash --help` must not load SQLAlchemy, Redis and Celery.
    from core.bootstrap import Container

    return Container(settings)


def write_secret(path: Path, content: str) -> None:
    """A new file only its owner can read (0600); an existing one is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def dev_tool_missing(command: str) -> str:
    # The production image leaves standin/ and bench/ out (see the Dockerfile).
    return f"{command} is a development tool, not in this image"


# What stops a command from outside: a service manager or `timeout` (SIGTERM), a closed
# terminal or SSH session (SIGHUP). Ctrl-C (SIGINT) already raises KeyboardInterrupt.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_unwind() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise SystemExit(128 + signal) in it instead
    of ending the process on the spot, as Ctrl-C raises KeyboardInterrupt: a backup or restore
    stopped from outside still stops its pg_dump or pg_restore (which would run on, holding
    its locks) and deletes its half-written copy. The exit status is the shell's for the
    signal (143 for SIGTERM)."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
