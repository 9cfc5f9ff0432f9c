"""argparse types for the command line's numbers: a value out of range is refused in one line
("argument --workers: a whole number from 1 to 64") before the command does anything; the
roles a --role takes; and the name to tell people to type for the next command."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

MAX_PROCESSES = 64  # NEWSFLASH_WORKER_CONCURRENCY's limit; web and bench processes alike


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high`."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"a whole number from {low} to {high}")
        return value

    return whole


def number(low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """A number from `low` (or, with `above`, greater than it) to `high`; never NaN."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (low < value <= high if above else low <= value <= high):
            lower = f"above {low:g} up" if above else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"a number {lower} to {high:g}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a refusal is one line like every other failure of the command
    ("newsflash web: argument --workers: a whole number from 1 to 64; see --help"), not the
    usage block followed by the reason. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def roles() -> list[str]:
    """--role's choices (`token create`, `user create`, `user role`): the core's roles, in order."""
    from core.accounts import Role

    return [role.value for role in Role]


def like_setting(env: str) -> Callable[[str], Any]:
    """An option that sets a setting takes what the setting takes (its declared kind), so the
    two never disagree: `--batch-size` as NEWSFLASH_BATCH_SIZE."""
    from config.settings import declarations

    kind = next(d.kind for d in declarations() if d.env == env)

    def parse(text: str) -> Any:
        try:
            return kind.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (as {env})") from None

    return parse


def command_name(script: str | None = None, path: str | None = None) -> str:
    """How the next command must be typed in this shell: `newsflash` when that is what PATH
    finds, else the path of this one (`.venv/bin/newsflash` on a fresh machine after `make
    run`, whose venv is not on PATH). `script` is how it was started (sys.argv[0]); under
    `python -m cli` it is the console script beside this interpreter."""
    started = Path(script if script is not None else sys.argv[0])
    if started.name != "newsflash":
        started = Path(sys.executable).with_name("newsflash")
    if not started.exists():
        return "newsflash"
    found = shutil.which("newsflash", path=path)
    if found and os.path.samefile(found, started):
        return "newsflash"
    full = started.absolute()
    relative = os.path.relpath(full)
    return relative if not relative.startswith("..") else str(full)
