"""Running the `newsflash` command as an operator does, in a child process of its own."""

from __future__ import annotations

import os
import subprocess
import sys

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
    clean = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    clean.update(env)
    return subprocess.run(
        [*wrap, sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=clean,
        # No terminal and nothing to read, as under cron or CI, whoever runs the tests: a
        # prompt (getpass opens /dev/tty first) must fail, not wait for someone to type.
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
