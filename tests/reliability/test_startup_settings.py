"""Every setting, malformed, stops every entry point at start-up: one line naming it, exit 2.

The cases come from the declaration (config/settings.py), so a new setting is walked too."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Declaration, declarations
from tests.support.services import ROOT, make_env

pytestmark = pytest.mark.timeout(300)

CASES = [
    pytest.param(d, value, id=f"{d.env}={value[:24]!r}")
    for d in declarations()
    for value in d.kind.malformed()
]
# Variables another tool may have set in the test runner's own environment.
FOREIGN = {"PORT", "PROMETHEUS_MULTIPROC_DIR"}


def _base_env(tmp_path: Path, vapid_pem: str) -> dict[str, str]:
    """A complete, valid configuration: without the malformed value every entry point starts."""
    return make_env(
        tmp_path / "var", f"sqlite:///{tmp_path}/nf.db", "redis://127.0.0.1:9/0", vapid_pem
    )


def _with_malformed(base: dict[str, str], d: Declaration, value: str) -> dict[str, str]:
    env = dict(base)
    # A secret comes inline or from its *_FILE: drop the other form, so the value under test
    # is the one read (setting both is refused on its own, with its own message).
    for other in declarations():
        if other.file_of == d.env or d.file_of == other.env:
            env.pop(other.env, None)
    env[d.env] = value
    return env


def _in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> None:
    """The process environment exactly `env`; the working directory has no .env file."""
    for name in list(os.environ):
        if name.startswith("NEWSFLASH_") or name in FOREIGN:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    # service.wsgi, run here in the test's process, installs the web's log handler on the root
    # logger, bound to this test's captured stderr: the root logger is put back afterwards (a
    # thread of a later test logging through it found the capture closed).
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)


def _cli(argv: list[str]) -> Callable[[], int]:
    def start() -> int:
        from cli.main import main

        return main(argv)

    return start


def _module(name: str) -> Callable[[], int]:
    """What `gunicorn service.wsgi:app` / `celery -A workers.celery_app` do first: run it."""

    def start() -> int:
        try:
            runpy.run_module(name, run_name=name)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return start


ENTRY_POINTS = {
    "cli": _cli(["settings"]),
    "web": _module("service.wsgi"),
    "worker": _module("workers.celery_app"),
}


def _assert_one_line_naming(stderr: str, d: Declaration, value: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith(f"newsflash: {d.env}"), line
    assert "expected" in line, line
    if d.secret:
        assert value not in line, "a secret was echoed"


def test_a_valid_configuration_starts_every_entry_point(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    vapid_pem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The walk below proves something only if the base configuration itself is accepted."""
    _in_process(monkeypatch, tmp_path, _base_env(tmp_path, vapid_pem))
    for start in ENTRY_POINTS.values():
        assert start() == 0
    assert "NEWSFLASH_SECRET_KEY=****" in capsys.readouterr().out


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(("d", "value"), CASES)
def test_every_malformed_setting_stops_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    vapid_pem: str,
    capsys: pytest.CaptureFixture[str],
    d: Declaration,
    value: str,
    entry: str,
) -> None:
    _in_process(monkeypatch, tmp_path, _with_malformed(_base_env(tmp_path, vapid_pem), d, value))
    status = ENTRY_POINTS[entry]()
    err = capsys.readouterr().err
    assert status == 2, err
    _assert_one_line_naming(err, d, value)


def test_every_setting_has_a_malformed_example() -> None:
    assert all(d.kind.malformed() for d in declarations())
    assert len(CASES) >= len(declarations())


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLASH_")}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    clean.update(env)
    return subprocess.run(
        argv, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # Both were silently accepted before: the limit was off, the webhook failed only on use.
        ("NEWSFLASH_RATE_LIMIT_SUBSCRIBE", "thirty per minute"),
        ("NEWSFLASH_CMS_WEBHOOK_SECRET", "whsec_not*base64"),
    ],
)
def test_real_processes_refuse_them_too(
    tmp_path: Path, vapid_pem: str, variable: str, value: str
) -> None:
    """The in-process walk above, checked once as real processes start (CLI, web, worker)."""
    env = {**_base_env(tmp_path, vapid_pem), variable: value}
    starts = {
        "newsflash worker": [sys.executable, "-m", "cli", "worker"],
        "newsflash beat": [sys.executable, "-m", "cli", "beat"],
        "web module": [sys.executable, "-c", "import service.wsgi"],
        "celery -A": [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"],
    }
    for name, argv in starts.items():
        result = _run(argv, env)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith(f"newsflash: {variable}: expected"), (name, lines[0])
        assert value not in lines[0] or variable != "NEWSFLASH_CMS_WEBHOOK_SECRET"


def test_gunicorn_started_directly_stops_instead_of_reforking(
    tmp_path: Path, vapid_pem: str
) -> None:
    """A worker failing at import with status 2 was forked again every second, for ever."""
    env = {**_base_env(tmp_path, vapid_pem), "NEWSFLASH_RATE_LIMIT_LOGIN": "ten per minute"}
    argv = [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "service.wsgi:app"]
    result = _run(argv, env)
    assert result.returncode == 3, result.stderr  # gunicorn's "worker failed to boot"
    ours = [line for line in result.stderr.splitlines() if line.startswith("newsflash: ")]
    assert ours == [
        "newsflash: NEWSFLASH_RATE_LIMIT_LOGIN: expected limits like '30 per minute' or "
        "'10/second; 500/hour', each at least 1 (got 'ten per minute')"
    ]
