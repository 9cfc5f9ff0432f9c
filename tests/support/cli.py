"""Running the `newsflash` command as an operator does, in a child process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def cli_running(
    args: list[str], env: dict[str, str], drop: tuple[str, ...] = ("NEWSFLASH_",)
) -> Iterator[subprocess.Popen[str]]:
    """start_cli's command for the block; killed if it still runs when the block ends (a
    failing test must not leave it behind on a shared machine)."""
    cli = start_cli(args, env, drop)
    try:
        yield cli
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()


def stop_cli(
    cli: subprocess.Popen[str], stop: signal.Signals, timeout_s: float = 20
) -> tuple[str, str]:
    """`stop` to a started command, as a service manager, `timeout` or a closed terminal sends
    it, and its output: it exits with the shell's status for the signal (128 + n: it unwound),
    or -9 after SIGKILL, which no process sees, and never with a traceback."""
    cli.send_signal(stop)
    out, err = cli.communicate(timeout=timeout_s)
    expected = -stop if stop == signal.SIGKILL else 128 + stop
    assert cli.returncode == expected, (cli.returncode, out, err)
    assert "Traceback" not in err, err
    return out, err


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
