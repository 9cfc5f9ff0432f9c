"""`newsflash run`, what `make run` ends with, from start to Ctrl-C as the README's reader meets
it: the welcome with the next commands, the local-subject warning said once (not once per
child), and one Ctrl-C stopping everything without a traceback and with both ports freed; the
same when the terminal closes under it (SIGHUP), which once left every child running, and when
it is killed outright (kill -9), where its children stop by the kernel's parent-death signal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT, free_port, port_open
from tests.support.stack import child_pids, running, wait_until

WARNING = "NEWSFLASH_VAPID_SUBJECT names localhost"


def _cli(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize(
    "stop",
    [signal.SIGINT, signal.SIGHUP, signal.SIGKILL],
    # SIGHUP: the terminal or SSH session closed under it; SIGKILL: kill -9 or the OOM killer,
    # which it cannot see: its children stop anyway (the kernel's parent-death signal).
    ids=["ctrl-c", "terminal-closed", "killed"],
)
def test_run_welcomes_warns_once_and_whatever_ends_it_stops_everything(
    tmp_path: Path, clean_redis: str, stop: signal.Signals
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLASH_")}
    env.update(
        NEWSFLASH_VAR_DIR=str(tmp_path / "var"),
        NEWSFLASH_DATABASE_URL=f"sqlite:///{tmp_path}/var/newsflash.db",
        NEWSFLASH_REDIS_URL=clean_redis,
        NEWSFLASH_ALLOW_LOOPBACK_PUSH="on",
    )
    env.pop("PORT", None)
    for step in (["init"], ["db", "upgrade"]):  # as make run does first
        assert _cli(step, env, stdout=subprocess.DEVNULL).wait(60) == 0, step
    port, standin_port = free_port(), free_port()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        run = _cli(
            ["run", "--port", str(port), "--standin-port", str(standin_port)],
            env,
            stdout=stdout,
            stderr=stderr,
        )
    children: list[int] = []
    try:
        wait_until(lambda: "Newsflash is running" in out.read_text(), 120, "the welcome")
        welcome = out.read_text()
        assert f"  newsroom http://127.0.0.1:{port}/editor" in welcome
        assert f"--standin http://127.0.0.1:{standin_port}," in welcome
        children = child_pids(run.pid)  # web, workers, beat, the stand-in (and Redis's none)
        assert len(children) >= 5, children
        run.send_signal(stop)  # the terminal's (the children have sessions of their own)
        assert run.wait(60) == (-stop if stop == signal.SIGKILL else 0)
        wait_until(lambda: not any(running(pid) for pid in children), 30, "every child to stop")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        for pid in children:  # each leads a session of its own: a failed stop leaves none behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    said = err.read_text()
    assert said.count(WARNING) == 1, said
    if stop != signal.SIGKILL:  # killed, it says nothing more; its children still stop
        assert "Traceback" not in said and "WorkerLostError" not in said, said
        assert said.rstrip().endswith("stopped.")
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", standin_port)
