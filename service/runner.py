"""`newsflash run` (make run): Redis if needed, then web, workers, beat and the demo stand-in.

Children run in their own sessions so one Ctrl-C here stops them in order and leaves none behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import redis

from config.settings import Settings
from core.adapters.children import bound_to_caller
from core.endpoints import is_loopback_host
from service.listeners import ListenError, check_free

DEFAULT_STANDIN_PORT = 8001


class RunError(Exception):
    pass


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start a local redis-server with its data under var/ when nothing answers."""
    if _redis_answers(settings.redis_url):
        return None
    parts = urlsplit(settings.redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    binary = shutil.which("redis-server")
    if not is_loopback_host(host) or binary is None:
        raise RunError(
            f"NEWSFLASH_REDIS_URL: nothing answers at {host}:{port}. Install Redis "
            "(apt-get install redis-server, brew install redis) or point NEWSFLASH_REDIS_URL at one."
        )
    try:
        check_free(host, port, "set NEWSFLASH_REDIS_URL")
    except ListenError:
        raise RunError(
            f"NEWSFLASH_REDIS_URL: port {port} on {host} is in use by something that is not "
            "a Redis answering PING: set NEWSFLASH_REDIS_URL or free the port"
        ) from None
    data = (settings.var_dir / "redis").resolve()
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            *bound_to_caller(),
            binary,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--logfile",
            str(data / "redis.log"),
        ],
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _redis_answers(settings.redis_url):
            print(f"started redis-server on {host}:{port} (data in {data})")
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RunError(
        f"NEWSFLASH_REDIS_URL: started redis-server but it does not answer at {host}:{port}"
    )


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    # A session of its own (Ctrl-C reaches only this process, which stops each child in
    # order), bound to this process: killed outright, it still takes its children with it.
    return name, subprocess.Popen([*bound_to_caller(), *argv], env=env, start_new_session=True)


def stop_children(
    children: list[tuple[str, subprocess.Popen[bytes]]], grace_s: float = 10.0
) -> None:
    """SIGTERM to each child alone, then, after the grace, SIGKILL to whatever is left of its
    process group. Each child stops its own helpers on SIGTERM (a Celery worker lets its pool
    finish the task in hand; the web parent stops its server processes): a SIGTERM to the whole
    group would kill a pool process mid-task, and the worker would log a WorkerLostError."""
    for _name, proc in children:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for _name, proc in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for _name, proc in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_ready(
    url: str, timeout_s: float, children: list[tuple[str, subprocess.Popen[bytes]]]
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in children:
            if proc.poll() is not None:
                raise RunError(f"{name} exited with status {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def check_ports(port: int, standin_port: int | None) -> None:
    """Refuse in one line, before anything starts, a port another program already holds."""
    try:
        check_free("127.0.0.1", port, "set PORT or pass --port")
        if standin_port:
            check_free("127.0.0.1", standin_port, "pass --standin-port (make run STANDIN_PORT=…)")
    except ListenError as exc:
        raise RunError(str(exc)) from None


def run_all(
    settings: Settings,
    port: int,
    standin_port: int | None = DEFAULT_STANDIN_PORT,
    cli: str = "newsflash",
) -> int:
    try:
        check_ports(port, standin_port)
    except RunError as exc:
        print(f"newsflash: {exc}", file=sys.stderr)
        return 2
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Ctrl-C, a service manager or `kill`, and a closed terminal or SSH session: the children
    # have sessions of their own and see none of these, so whichever ends this process must
    # stop them first, or they run on, holding the ports the next `make run` needs.
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, on_signal)
    try:
        redis_proc = ensure_redis(settings)
        if redis_proc is not None:
            children.append(("redis-server", redis_proc))
        _spawn_all(children, settings, port, standin_port)
        base = f"http://127.0.0.1:{port}"
        if not _wait_ready(base + "/readyz", 90, children):
            raise RunError(f"web did not become ready at {base}/readyz within 90 s")
        print(welcome_text(base, standin_port, cli), flush=True)
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"{name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
        return 0
    except RunError as exc:
        print(f"newsflash: {exc}", file=sys.stderr)
        return 2
    finally:
        if children:  # a refusal before anything started stays one line
            print("stopping…", file=sys.stderr)
            stop_children(children)
            print("stopped.", file=sys.stderr)


def _spawn_all(
    children: list[tuple[str, subprocess.Popen[bytes]]],
    settings: Settings,
    port: int,
    standin_port: int | None,
) -> None:
    """The stand-in, web, a worker on every queue, one on breaking alone, and beat."""
    env = dict(os.environ, PORT=str(port), PYTHONUNBUFFERED="1")
    metrics_dir = settings.var_dir / "metrics"
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir.resolve()))
    cli = [sys.executable, "-m", "cli", "--no-start-warnings"]
    if standin_port:
        children.append(
            _spawn("push-standin", [*cli, "push-standin", "--port", str(standin_port)], env)
        )
    children.append(_spawn("web", [*cli, "web", "--port", str(port)], env))
    children.append(_spawn("worker", [*cli, "worker", "-n", "all@%h"], env))
    children.append(
        _spawn(
            "worker-breaking",
            [*cli, "worker", "-Q", "newsflash.breaking", "-c", "1", "-n", "breaking@%h"],
            env,
        )
    )
    children.append(_spawn("beat", [*cli, "beat"], env))


def welcome_text(base: str, standin_port: int | None, cli: str = "newsflash") -> str:
    """The URLs and the next commands, spelled as this shell must type them (`cli`)."""
    lines = [
        "",
        "Newsflash is running (Ctrl-C stops everything):",
        f"  reader   {base}/            (demo article with the opt-in prompt)",
        f"  manage   {base}/manage",
        f"  newsroom {base}/editor      (first: {cli} user create --email you@example.com --role admin)",
        f"  ops      {base}/ops",
    ]
    if standin_port:
        standin = f"http://127.0.0.1:{standin_port}"
        option = "" if standin_port == DEFAULT_STANDIN_PORT else f" --standin {standin}"
        lines.append(
            f"  stand-in {standin}/  ({cli} demo-subscribers 100{option}, then {cli} send ...)"
        )
    return "\n".join(lines)


def var_path(settings: Settings, name: str) -> Path:
    return settings.var_dir / name
