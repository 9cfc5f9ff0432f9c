"""`newsflash run` (make run) as the person at the terminal meets it: the next commands it
prints are ones this shell can type, and one Ctrl-C stops every child the way the child itself
stops (a Celery worker finishing the task in hand), with nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.args import command_name
from service.runner import stop_children, welcome_text
from tests.support.stack import wait_until


def _script(directory: Path) -> Path:
    directory.mkdir(parents=True)
    script = directory / "newsflash"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_the_next_commands_are_typed_as_this_shell_finds_newsflash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "checkout" / ".venv" / "bin"
    script = _script(venv_bin)
    monkeypatch.chdir(tmp_path / "checkout")
    # A fresh machine: the venv is not on PATH, so `newsflash` alone is "command not found".
    assert command_name(str(script), path=str(tmp_path / "elsewhere")) == ".venv/bin/newsflash"
    assert command_name(".venv/bin/newsflash", path="") == ".venv/bin/newsflash"
    # Activated venv (or an installed package): the plain name is what works.
    assert command_name(str(script), path=str(venv_bin)) == "newsflash"
    # Another `newsflash` first on PATH is not this one: say which.
    other = _script(tmp_path / "other-bin")
    assert command_name(str(script), path=str(other.parent)) == ".venv/bin/newsflash"
    monkeypatch.chdir(tmp_path)
    assert command_name(str(script), path="") == "checkout/.venv/bin/newsflash"
    monkeypatch.chdir(tmp_path / "other-bin")
    assert command_name(str(script), path="") == str(script)


def test_the_welcome_names_the_command_and_a_moved_stand_in() -> None:
    text = welcome_text("http://127.0.0.1:8000", 8001, ".venv/bin/newsflash")
    assert ".venv/bin/newsflash user create --email you@example.com --role admin" in text
    assert "(.venv/bin/newsflash demo-subscribers 100, then .venv/bin/newsflash send ...)" in text
    assert "  newsroom http://127.0.0.1:8000/editor " in text
    moved = welcome_text("http://127.0.0.1:8010", 8011, "newsflash")
    assert "stand-in http://127.0.0.1:8011/" in moved
    assert "newsflash demo-subscribers 100 --standin http://127.0.0.1:8011," in moved
    assert "stand-in" not in welcome_text("http://127.0.0.1:8000", None)


# A child that, like a Celery worker, has a helper process in its own process group and stops
# it itself on SIGTERM (the worker's warm shutdown lets its pool finish the task in hand). The
# helper writes down every signal it receives.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    record = sys.argv[1]
    helper = os.fork()
    if helper == 0:
        def note(signum, _frame):
            with open(record, "a") as f:
                f.write(signal.Signals(signum).name + "\\n")
            if signum == signal.SIGUSR1:
                os._exit(0)
        signal.signal(signal.SIGTERM, note)
        signal.signal(signal.SIGUSR1, note)
        with open(record, "a") as f:
            f.write("ready\\n")
        while True:
            time.sleep(0.05)
    def stop(_signum, _frame):
        time.sleep(0.3)  # the task in hand finishing
        os.kill(helper, signal.SIGUSR1)
        os.waitpid(helper, 0)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.05)
    """
)


def test_stopping_signals_each_child_alone_so_it_stops_its_own_helpers(tmp_path: Path) -> None:
    record = tmp_path / "signals"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(record)], start_new_session=True)
    try:
        wait_until(lambda: record.exists() and "ready" in record.read_text(), 10, "the helper")
        stop_children([("worker", proc)], grace_s=10)
        assert proc.returncode == 0, "the child stopped by itself within the grace"
        assert record.read_text().split() == ["ready", "SIGUSR1"], (
            "the helper was stopped by its parent, never signalled over its head"
        )
        try:
            os.killpg(proc.pid, 0)
            left = True
        except ProcessLookupError:
            left = False
        assert not left, "nothing of the child's process group is left"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
