"""Startup guards: a worker refuses unsafe broker settings; /readyz warns ops about a lossy Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.accounts import Role
from tests.reliability.harness import RedisServer, Rig, rig
from tests.support.services import free_port, make_env
from tests.support.stack import ROOT

pytestmark = pytest.mark.timeout(180)


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLASH_")}
    full.update(env)
    return full


_TAMPERED = textwrap.dedent(
    """
    from config.settings import load_settings
    from workers.factory import make_celery
    app = make_celery(load_settings())
    app.conf.accept_content = ["json", "pickle"]
    app.worker_main(["worker", "--pool", "solo", "--loglevel", "WARNING"])
    """
)


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Three real worker start-ups, run side by side (each costs seconds of imports)."""
    tmp = tmp_path_factory.mktemp("guards")
    # A broker nobody listens on: a worker that got past its guard would sit retrying it.
    env = make_env(tmp / "var", f"sqlite:///{tmp}/nf.db", "redis://127.0.0.1:9/0", vapid_pem)
    runs = {
        "newsflash worker": (
            [sys.executable, "-m", "cli", "worker"],
            {"NEWSFLASH_VISIBILITY_TIMEOUT_S": "100", "NEWSFLASH_TASK_TIME_LIMIT_S": "300"},
        ),
        "celery -A": (
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "--pool",
                "solo",
            ],
            {"NEWSFLASH_VISIBILITY_TIMEOUT_S": "400", "NEWSFLASH_TASK_TIME_LIMIT_S": "300"},
        ),
        "pickle": ([sys.executable, "-c", _TAMPERED], {}),
    }
    procs = {
        name: subprocess.Popen(
            argv,
            cwd=ROOT,
            env=_clean_env({**env, **extra}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (argv, extra) in runs.items()
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def _one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode not in (0, None, -9), result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_newsflash_worker_refuses_a_visibility_timeout_below_the_task_limits(
    refusals: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    line = _one_clear_line(
        refusals["newsflash worker"], "NEWSFLASH_VISIBILITY_TIMEOUT_S (100)", "(300)"
    )
    print("\n" + line)


def test_the_guard_holds_however_the_worker_is_started(
    refusals: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = refusals["celery -A"]
    assert result.returncode not in (0, -9)
    assert "NEWSFLASH_VISIBILITY_TIMEOUT_S (400)" in result.stderr
    assert "ready." not in result.stdout + result.stderr


def test_a_worker_app_allowing_pickle_refuses_to_start(
    refusals: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """A setting an operator could only change in code or Celery config: the worker checks the
    configuration it really runs with, not only what the CLI built."""
    _one_clear_line(refusals["pickle"], "refusing to start", "accept_content")


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("task_serializer", "pickle", "task_serializer"),
        ("broker_connection_max_retries", 100, "broker_connection_max_retries"),
        ("task_acks_late", False, "task_acks_late"),
        ("task_reject_on_worker_lost", False, "task_reject_on_worker_lost"),
        ("accept_content", ["json", "yaml"], "accept_content"),
    ],
)
def test_each_unsafe_celery_setting_is_named(
    vapid_pem: str, tmp_path: Path, name: str, value: object, needle: str
) -> None:
    from tests.support.services import settings_from
    from workers.factory import UnsafeWorkerConfig, celery_config, check_worker_config

    conf = celery_config(
        settings_from(make_env(tmp_path, f"sqlite:///{tmp_path}/nf.db", "redis://x:1/0", vapid_pem))
    )
    check_worker_config(conf)
    conf[name] = value
    with pytest.raises(UnsafeWorkerConfig, match=needle):
        check_worker_config(conf)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _ops_readyz(r: Rig) -> Any:
    """/readyz as ops see it: the warnings are ops detail, not for the public body."""
    token = r.live.token("ops-probe", Role.OPS)
    return r.client.get("/readyz", headers={"Authorization": f"Bearer {token}"})


def test_readyz_warns_about_a_broker_without_persistence_but_stays_ready(
    tmp_path: Path, vapid_pem: str, private_redis: RedisServer
) -> None:
    client = private_redis.client()
    with rig(tmp_path, f"sqlite:///{tmp_path}/nf.db", private_redis.url, vapid_pem) as r:
        good = _ops_readyz(r)
        assert good.status_code == 200 and good.json["warnings"] == [], good.json

        client.config_set("appendonly", "no")
        client.config_set("maxmemory-policy", "allkeys-lru")
        warned = _ops_readyz(r)
        # A warning is not a failure: the alerts are safe in the database either way.
        assert warned.status_code == 200 and warned.json["status"] == "ok"
        text = " ".join(warned.json["warnings"])
        assert "appendonly no" in text and "allkeys-lru" in text
        public = r.client.get("/readyz")
        assert public.status_code == 200 and "warnings" not in public.json

        client.config_set("maxmemory-policy", "volatile-lru")
        assert "volatile-lru" in " ".join(_ops_readyz(r).json["warnings"])


def test_readyz_on_the_shared_redis_here_follows_its_real_settings(
    tmp_path: Path, vapid_pem: str, redis_url: str
) -> None:
    """The machine's own Redis runs with appendonly no: ready, with the warning (read only)."""
    import redis

    appendonly = redis.Redis.from_url(redis_url, decode_responses=True).config_get("appendonly")
    with rig(tmp_path, f"sqlite:///{tmp_path}/nf.db", redis_url, vapid_pem) as r:
        answer = _ops_readyz(r)
    assert answer.status_code == 200
    warned = any("appendonly no" in w for w in answer.json["warnings"])
    assert warned == (appendonly["appendonly"] != "yes"), answer.json


# Ports and addresses a server cannot listen on: one line naming the port and what to change.


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A loopback port some other program holds (bound and listening)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _start(
    argv: list[str], env: dict[str, str], user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "cli", *argv],
        cwd=ROOT,
        env=_clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli_env(tmp_path: Path, vapid_pem: str) -> dict[str, str]:
    # Nothing answers on port 9: any command that got past its port check would fail differently.
    return make_env(
        tmp_path / "var", f"sqlite:///{tmp_path}/nf.db", "redis://127.0.0.1:9/0", vapid_pem
    )


@pytest.mark.parametrize(
    ("argv", "extra", "change"),
    [
        (["web", "--port", "{port}"], {}, "set PORT or pass --port"),
        (["web"], {"PORT": "{port}"}, "set PORT or pass --port"),
        (["run", "--port", "{port}"], {}, "set PORT or pass --port"),
        (["run", "--port", "{free}", "--standin-port", "{port}"], {}, "pass --standin-port"),
        (["push-standin", "--port", "{port}"], {}, "pass --port"),
        (["bench", "sink", "--port", "{port}"], {}, "pass --port"),
    ],
    ids=[
        "web --port",
        "web PORT",
        "run --port",
        "run --standin-port",
        "push-standin",
        "bench sink",
    ],
)
def test_a_port_in_use_is_one_line_naming_the_port_and_what_to_change(
    argv: list[str],
    extra: dict[str, str],
    change: str,
    occupied_port: int,
    cli_env: dict[str, str],
) -> None:
    values = {"port": str(occupied_port), "free": str(free_port())}
    result = _start(
        [a.format(**values) for a in argv],
        {**cli_env, **{k: v.format(**values) for k, v in extra.items()}},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_clear_line(result, f"port {occupied_port} on 127.0.0.1 is in use", change)
    print("\n" + line)


def test_run_with_the_redis_port_held_by_something_else_is_one_line(
    occupied_port: int, cli_env: dict[str, str]
) -> None:
    """`make run` starts a local redis-server when none answers; a port held by a program that
    is not Redis is named in one line, and nothing is left running."""
    env = {**cli_env, "NEWSFLASH_REDIS_URL": f"redis://127.0.0.1:{occupied_port}/0"}
    argv = ["run", "--port", str(free_port()), "--standin-port", str(free_port())]
    result = _start(argv, env)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_clear_line(
        result, f"port {occupied_port} on 127.0.0.1 is in use", "NEWSFLASH_REDIS_URL"
    )
    print("\n" + line)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["web", "--host", "300.1.2.3", "--port", "{free}"], "--host '300.1.2.3' is not an IP"),
        (["web", "--host", "news.example", "--port", "{free}"], "pass --host"),
        (["web", "--port", "70000"], "port 70000 is not a TCP port"),
        (["web", "--port", "0"], "port 0 is not a TCP port"),  # it served on PORT instead
        (["push-standin", "--port", "0"], "port 0 is not a TCP port"),
    ],
    ids=[
        "bad address",
        "a name, not an address",
        "web port too big",
        "web port 0",
        "stand-in port 0",
    ],
)
def test_an_address_or_port_that_cannot_be_listened_on_is_one_line(
    argv: list[str], needle: str, cli_env: dict[str, str]
) -> None:
    result = _start([a.format(free=free_port()) for a in argv], cli_env)
    assert result.returncode == 2, result.stdout + result.stderr
    print("\n" + _one_clear_line(result, needle))


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody"
)
def test_a_low_port_without_privileges_is_one_line() -> None:
    """As an ordinary user (nobody), port 80: refused in one line saying what to change. The
    sink runs alone here, from a copy nobody may read (the checkout and its venv may sit in a
    root-only directory, as a CI clone in a fresh mktemp -d does); `newsflash web`, `run` and
    `push-standin` open their ports through the same service/listeners.py."""
    copy = Path(tempfile.mkdtemp(prefix="nf-nobody-", dir="/tmp"))
    try:
        for package, modules in (
            ("bench", ("__init__", "sink")),
            ("service", ("__init__", "listeners")),
        ):
            (copy / package).mkdir()
            for module in modules:
                shutil.copy(ROOT / package / f"{module}.py", copy / package / f"{module}.py")
        for path in (copy, *copy.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        result = subprocess.run(
            [*NOBODY, os.path.realpath(sys.executable), "-s", "-m", "bench.sink", "--port", "80"],
            cwd=copy,
            env=_clean_env({}),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert result.returncode == 2, result.stdout + result.stderr
    print("\n" + _one_clear_line(result, "port 80 on 127.0.0.1 needs privileges", "pass --port"))
