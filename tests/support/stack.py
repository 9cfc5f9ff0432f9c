"""A live Newsflash stack for tests: real worker (and beat) processes, polled with deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """Poll until check() is truthy; fail with what we were waiting for, never sleep blindly."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Process:
    """A newsflash CLI subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # PROMETHEUS_MULTIPROC_DIR too: each stack's processes derive it from their var dir.
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NEWSFLASH_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *argv],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def launch_worker(
    env: dict[str, str],
    log_dir: Path,
    name: str = "worker",
    queues: str | None = None,
    concurrency: int = 2,
) -> Process:
    """A worker process, started but not yet waited for (see wait_ready)."""
    argv = [
        "worker",
        "-c",
        str(concurrency),
        "-n",
        f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]
    if queues:
        argv += ["-Q", queues]
    return Process(name, argv, env, log_dir)


def launch_beat(env: dict[str, str], log_dir: Path) -> Process:
    return Process("beat", ["beat"], env, log_dir)


def wait_ready(proc: Process, timeout_s: float) -> Process:
    """Wait for a worker's "ready." or beat's start line; fail with its log if it exits first."""
    marker = "beat: Starting" if proc.name == "beat" else "ready."
    wait_until(
        lambda: (not proc.alive() and _raise(proc)) or marker in proc.output(),
        timeout_s,
        f"{proc.name} to be ready",
        interval_s=0.2,
    )
    return proc


def start_worker(
    env: dict[str, str],
    log_dir: Path,
    name: str = "worker",
    queues: str | None = None,
    concurrency: int = 2,
    ready_timeout_s: float = 60,
) -> Process:
    proc = launch_worker(env, log_dir, name, queues, concurrency)
    try:
        return wait_ready(proc, ready_timeout_s)
    except BaseException:
        proc.stop()
        raise


def start_beat(env: dict[str, str], log_dir: Path) -> Process:
    return wait_ready(launch_beat(env, log_dir), 30)


def start_web(env: dict[str, str], log_dir: Path, port: int, processes: int = 1) -> Process:
    """`newsflash web` on 127.0.0.1:port, once it answers /healthz."""
    argv = ["web", "--host", "127.0.0.1", "--port", str(port), "--workers", str(processes)]
    web = Process("web", argv, env, log_dir)

    def healthy() -> bool:
        if not web.alive():
            _raise(web)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                return int(answer.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(healthy, 60, "the web app to answer", interval_s=0.2)
    except BaseException:
        web.stop()
        raise
    return web


def _raise(proc: Process) -> bool:
    raise AssertionError(f"{proc.name} exited early:\n{proc.output()[-4000:]}")


def processes_named(program: str, marker: str) -> list[int]:
    """Pids of running `program` processes with `marker` in their command line (from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        named = bool(argv) and argv[0].decode(errors="replace").endswith(program)
        if named and any(marker.encode() in arg for arg in argv):
            found.append(int(cmdline.parent.name))
    return found


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that are still its children (Linux /proc)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to read its status."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
