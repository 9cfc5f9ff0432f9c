"""Running the `newsflash` command as an operator does, in a child process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.support.services import ROOT


def run_cli(
    args: list[str],
    env: dict[str, str],
    timeout_s: float = 60,
    *,
    drop: tuple[str, ...] = ("NEWSFLASH_",),
    wrap: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`newsflash ARGS` from the checkout with `env` over this process's environment, minus the
    variables starting with `drop` (the tests' own settings must not leak in); `wrap`: a
    command that runs it (`unshare ...`)."""
    return subprocess.run(
        [*wrap, sys.executable, "-m", "cli", *args],
        **_as_an_operator(env, drop),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def start_cli(
    args: list[str], env: dict[str, str], drop: tuple[str, ...] = ("NEWSFLASH_",)
) -> subprocess.Popen[str]:
    """`newsflash ARGS` as run_cli runs it, left running: to stop it from outside."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        **_as_an_operator(env, drop),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _as_an_operator(env: dict[str, str], drop: tuple[str, ...]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    clean.update(env)
    return {
        "cwd": ROOT,
        "env": clean,
        # No terminal and nothing to read, as under cron or CI, whoever runs the tests: a
        # prompt (getpass opens /dev/tty first) must fail, not wait for someone to type.
        "stdin": subprocess.DEVNULL,
        "start_new_session": True,
    }
